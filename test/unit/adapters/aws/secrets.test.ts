import { describe, expect, it } from 'vitest';
import {
  databaseUrlFromSecret,
  loadSecretsIntoEnv,
  SecretError,
  type SecretReader,
} from '../../../../functions/adapters/aws/secrets.ts';

function reader(values: Record<string, string>) {
  const reads: string[] = [];
  const r: SecretReader = {
    async read(id) {
      reads.push(id);
      const v = values[id];
      if (v === undefined) throw new SecretError(`cannot read secret ${id}`);
      return v;
    },
  };
  return { r, reads };
}

const rdsSecret = JSON.stringify({
  username: 'strata',
  password: 'p@ss:w/rd#1',
  host: 'cluster.example',
  port: 5432,
  dbname: 'strata',
});

describe('secrets', () => {
  it('builds a TLS-verified URL through the proxy host, escaping the password', () => {
    const url = new URL(databaseUrlFromSecret(JSON.parse(rdsSecret), 'proxy.example'));
    expect(url.hostname).toBe('proxy.example');
    expect(decodeURIComponent(url.password)).toBe('p@ss:w/rd#1');
    expect(url.pathname).toBe('/strata');
    expect(url.searchParams.get('sslmode')).toBe('verify-full');
  });

  it('fills DATABASE_URL and Upstash settings from the referenced secrets', async () => {
    const { r, reads } = reader({
      db: rdsSecret,
      up: JSON.stringify({ url: 'https://x.upstash.io', token: 't' }),
    });
    const env: NodeJS.ProcessEnv = {
      DATABASE_SECRET_ARN: 'db',
      DATABASE_HOST: 'proxy.example',
      UPSTASH_SECRET_ARN: 'up',
    };
    const set = await loadSecretsIntoEnv(env, r);
    expect(set.sort()).toEqual(['DATABASE_URL', 'UPSTASH_REDIS_REST_TOKEN', 'UPSTASH_REDIS_REST_URL']);
    expect(new URL(env.DATABASE_URL!).hostname).toBe('proxy.example');
    expect(env.UPSTASH_REDIS_REST_URL).toBe('https://x.upstash.io');
    expect(reads.sort()).toEqual(['db', 'up']);
  });

  it('leaves explicit settings alone and calls nothing without secret references', async () => {
    const { r, reads } = reader({});
    const env: NodeJS.ProcessEnv = { DATABASE_URL: 'postgres://local/db', DATABASE_SECRET_ARN: 'db' };
    expect(await loadSecretsIntoEnv(env, r)).toEqual([]);
    expect(env.DATABASE_URL).toBe('postgres://local/db');
    expect(reads).toEqual([]);
  });

  it('names a malformed secret without echoing its value', async () => {
    const { r } = reader({ db: JSON.stringify({ username: 'u', password: 'hunter2' }) });
    const err = await loadSecretsIntoEnv({ DATABASE_SECRET_ARN: 'db' }, r).catch((e) => e);
    expect(err).toBeInstanceOf(SecretError);
    expect(err.message).toContain('lacks host');
    expect(err.message).not.toContain('hunter2');
  });
});
