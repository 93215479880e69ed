/**
 * What every CLI command gets: parsed global flags, lazily loaded config and API client, and one
 * way to print data (`--json` or human text) and to fail (message + exit code, no stack trace
 * unless STRATA_DEBUG=1).
 */
import type { Command } from 'commander';
import { NotFoundError, UnauthorizedError, UnavailableError } from '../../functions/core/errors.ts';
import { parentOf } from '../../functions/core/paths.ts';
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

  /** The configuration if a command loaded it (error messages name where values came from). */
  get loaded(): CliConfig | undefined {
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

/**
 * The one line `strata` prints for a failed command. A rejected token or an unreachable API is
 * most often a value picked up from somewhere unexpected (an old .strata/dev.json, a stale
 * STRATA_TOKEN), so those say where the value came from and how to pass another.
 */
export function describeFailure(err: Error, config: CliConfig | undefined): string {
  if (!config) return err.message;
  if (err instanceof UnauthorizedError)
    return `${err.message} (token from ${config.source.token === 'flag' ? '--token' : config.source.token}; pass --token or set STRATA_TOKEN)`;
  if (err instanceof UnavailableError && err.message.startsWith('cannot reach the Strata API'))
    return `${err.message} (API URL from ${config.source.apiUrl === 'flag' ? '--api-url' : config.source.apiUrl}${
      config.source.apiUrl === config.devPath ? '; start that stack with `npm start`, or' : ';'
    } pass --api-url or set STRATA_API_URL)`;
  // The API's "not found: /a/b" names the path; on the command line, say where to look.
  const missing =
    err instanceof NotFoundError ? /^(?:directory )?not found: (\/.*)$/.exec(err.message) : null;
  if (missing?.[1] && missing[1] !== '/')
    return `${err.message}; see what is there with \`strata ls ${parentOf(missing[1])}\``;
  return err.message;
}
