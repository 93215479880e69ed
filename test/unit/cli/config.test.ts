import { mkdirSync, mkdtempSync as mkdtempSyncFs, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, devJsonPrefix, findDevJson, loadConfig } from '../../../mount-client/cli/config.ts';

/** Every temp dir this file makes, removed at the end (they used to stay in /tmp after each run). */
const made: string[] = [];
const mkdtempSync = (prefix: string): string => {
  const dir = mkdtempSyncFs(prefix);
  made.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

function project(): { root: string; nested: string } {
  const root = mkdtempSync(join(tmpdir(), 'strata-cfg-'));
  mkdirSync(join(root, '.strata'));
  writeFileSync(
    join(root, '.strata', 'dev.json'),
    JSON.stringify({
      apiUrl: 'http://127.0.0.1:1/',
      token: 'dev-token',
      bucket: 'b',
      dataPrefix: 'data/',
      region: 'r',
    }),
  );
  const nested = join(root, 'a', 'b');
  mkdirSync(nested, { recursive: true });
  return { root, nested };
}

describe('CLI config precedence: flags > env > .strata/dev.json > error', () => {
  it('finds the nearest dev.json from a nested directory', () => {
    const { root, nested } = project();
    expect(findDevJson(nested)).toBe(join(root, '.strata', 'dev.json'));
  });

  it('uses dev.json when nothing else is given', () => {
    const { nested } = project();
    const c = loadConfig({}, {}, nested);
    expect(c.apiUrl).toBe('http://127.0.0.1:1');
    expect(c.token).toBe('dev-token');
  });

  it('env beats dev.json and flags beat env', () => {
    const { nested } = project();
    const env = { STRATA_API_URL: 'http://env', STRATA_TOKEN: 'env-token' };
    expect(loadConfig({}, env, nested)).toMatchObject({ apiUrl: 'http://env', token: 'env-token' });
    expect(loadConfig({ apiUrl: 'http://flag', token: 'flag-token' }, env, nested)).toMatchObject({
      apiUrl: 'http://flag',
      token: 'flag-token',
      source: { apiUrl: 'flag', token: 'flag' },
    });
  });

  it('names what is missing and how to provide it', () => {
    const empty = mkdtempSync(join(tmpdir(), 'strata-cfg-empty-'));
    expect(() => loadConfig({}, {}, empty)).toThrow(ConfigError);
    expect(() => loadConfig({}, {}, empty)).toThrow(/STRATA_API_URL.*STRATA_TOKEN.*npm start/);
  });
});

describe('devJsonPrefix (the commands `npm start` prints)', () => {
  it('is empty where the CLI finds that dev.json by itself', () => {
    const { root, nested } = project();
    expect(devJsonPrefix(join(root, '.strata', 'dev.json'), nested)).toBe('');
  });

  it('names STRATA_DEV_JSON for a --state-dir the CLI would not find from the working directory', () => {
    const { nested } = project();
    const elsewhere = join(mkdtempSync(join(tmpdir(), 'strata-state-')), 'dev.json');
    expect(devJsonPrefix(elsewhere, nested)).toBe(`STRATA_DEV_JSON=${elsewhere} `);
    expect(devJsonPrefix(elsewhere, tmpdir())).toBe(`STRATA_DEV_JSON=${elsewhere} `);
  });
});
