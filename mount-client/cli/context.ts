/**
 * What every CLI command gets: parsed global flags, lazily loaded config and API client, and one
 * way to print data (`--json` or human text) and to fail (message + exit code, no stack trace
 * unless STRATA_DEBUG=1).
 */
import type { Command } from 'commander';
import { ApiClient } from '../api/client.ts';
import { type CliConfig, type GlobalFlags, loadConfig } from './config.ts';

export class CliContext {
  private cached?: CliConfig;
  private client?: ApiClient;
  constructor(private readonly program: Command) {}

  get flags(): GlobalFlags {
    return this.program.opts<GlobalFlags>();
  }

  config(): CliConfig {
    this.cached ??= loadConfig(this.flags);
    return this.cached;
  }

  api(): ApiClient {
    if (!this.client) {
      const c = this.config();
      this.client = new ApiClient({ apiUrl: c.apiUrl, token: c.token });
    }
    return this.client;
  }

  /** Prints `data` as JSON when --json is set (globally or on the command), else `human()`. */
  print(data: unknown, human: () => string, json = this.flags.json): void {
    if (json) process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
    else {
      const text = human();
      if (text) process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    }
  }

  async close(): Promise<void> {
    await this.client?.close();
  }
}

export type RegisterCommand = (program: Command, ctx: CliContext) => void;
