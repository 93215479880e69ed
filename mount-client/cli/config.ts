/**
 * CLI configuration with the precedence of design.md §5:
 * flags > environment (`STRATA_*`) > the nearest `.strata/dev.json` > a clear error naming what is
 * missing and how to provide it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

export interface DevJson {
  apiUrl: string;
  token: string;
  s3Endpoint?: string;
  bucket: string;
  dataPrefix: string;
  region: string;
  databaseUrl?: string;
  redis?: { url: string; token: string } | null;
}

export interface GlobalFlags {
  apiUrl?: string;
  token?: string;
  json?: boolean;
}

export interface CliConfig {
  apiUrl: string;
  token: string;
  /** Where each value came from, for `--verbose` and error messages. */
  source: { apiUrl: string; token: string };
  dev?: DevJson;
  devPath?: string;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Finds `.strata/dev.json` in `start` or its nearest ancestor. */
export function findDevJson(start = process.cwd()): string | undefined {
  let dir = resolve(start);
  for (;;) {
    const candidate = join(dir, '.strata', 'dev.json');
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/**
 * What a shell in `cwd` must put before `strata …` to use the stack whose dev.json is `devJson`:
 * nothing when the CLI finds that file by itself, else `STRATA_DEV_JSON=<path> ` (a stack started
 * with `--state-dir` outside the working tree, or a second stack next to the default one).
 */
export function devJsonPrefix(devJson: string, cwd = process.cwd()): string {
  return findDevJson(cwd) === resolve(devJson) ? '' : `STRATA_DEV_JSON=${resolve(devJson)} `;
}

export function readDevJson(path: string): DevJson {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as DevJson;
  } catch (err) {
    throw new ConfigError(
      `cannot read ${path}: ${(err as Error).message}; restart the local stack (npm start)`,
    );
  }
}

export function loadConfig(
  flags: GlobalFlags,
  env: NodeJS.ProcessEnv = process.env,
  cwd?: string,
): CliConfig {
  const devPath = env.STRATA_DEV_JSON ?? findDevJson(cwd);
  const dev = devPath && existsSync(devPath) ? readDevJson(devPath) : undefined;
  const pick = (flag: string | undefined, envName: string, devValue: string | undefined) => {
    if (flag) return { value: flag, source: 'flag' };
    if (env[envName]) return { value: env[envName] as string, source: `env ${envName}` };
    if (devValue) return { value: devValue, source: devPath as string };
    return undefined;
  };
  const apiUrl = pick(flags.apiUrl, 'STRATA_API_URL', dev?.apiUrl);
  const token = pick(flags.token, 'STRATA_TOKEN', dev?.token);
  const missing: string[] = [];
  if (!apiUrl) missing.push('the API URL (--api-url or STRATA_API_URL)');
  if (!token) missing.push('a token (--token or STRATA_TOKEN; create one with `strata token create`)');
  if (missing.length > 0) {
    throw new ConfigError(
      `missing ${missing.join(' and ')}; or run \`npm start\` in a Strata checkout, which writes .strata/dev.json`,
    );
  }
  return {
    apiUrl: apiUrl!.value.replace(/\/+$/, ''),
    token: token!.value,
    source: { apiUrl: apiUrl!.source, token: token!.source },
    dev,
    devPath,
  };
}
