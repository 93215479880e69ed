/**
 * Who may use the peer registry, through the real API of the local stack: only tokens without
 * prefix limits may heartbeat, list or read the serve policy, and a peer id stays bound to the token
 * that registered it while the registration lives — with Redis (TTL keys) and, after redis-server is
 * stopped, with PostgreSQL (the same rules from the peers table).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken } from '../../../functions/adapters/pg/tokens.ts';
import type { PeersResponse } from '../../../functions/core/api-types.ts';
import { type LocalRedis, startRedisServer } from '../../../local/redis.ts';
import { BUCKET, DATA_PREFIX, type LocalStack, startStack } from '../../../local/stack.ts';
import { ApiClient } from '../../../mount-client/api/client.ts';
import { missing } from '../../support/requirements.ts';

let dir: string;
let stack: LocalStack;
let redis: LocalRedis | undefined;
const clients: ApiClient[] = [];

async function client(spec: { prefixes?: string[] } = {}): Promise<ApiClient> {
  const { token } = await createToken(stack.pool, { name: 'peer test', scopes: ['read'], ...spec });
  const c = new ApiClient({ apiUrl: stack.dev.apiUrl, token });
  clients.push(c);
  return c;
}

const beat = (c: ApiClient, id: string, address: string, ttlSeconds = 5) =>
  c.request('POST', '/v1/peers/heartbeat', { body: { id, address, ttlSeconds } });
const list = async (c: ApiClient) => (await c.request<PeersResponse>('GET', '/v1/peers')).peers;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strata-peers-auth-'));
  if (!missing('redis-server')) redis = await startRedisServer();
  stack = await startStack({
    stateDir: dir,
    apiPort: 0,
    scheduleIntervalMs: 0,
    events: false,
    log: () => {},
    redis: redis ? { url: redis.url } : 'off',
    env: { POWERTOOLS_METRICS_DISABLED: 'true', POWERTOOLS_LOG_LEVEL: 'SILENT', STRATA_LOG_LEVEL: 'SILENT' },
  });
});

afterAll(async () => {
  for (const c of clients) await c.close();
  await stack?.stop();
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('peer registry access', () => {
  it('refuses prefix-limited tokens (403) for heartbeat, list and config', async () => {
    const limited = await client({ prefixes: ['/team-a'] });
    await expect(beat(limited, 'limited-1', '10.0.0.9:7431')).rejects.toMatchObject({ code: 'forbidden' });
    await expect(list(limited)).rejects.toThrow(/without prefix limits/);
    await expect(limited.request('GET', '/v1/peers/config')).rejects.toMatchObject({ code: 'forbidden' });
    const full = await client();
    expect((await list(full)).map((p) => p.id)).not.toContain('limited-1');
  });

  it('gives a full read token the serve policy: bucket, data prefix, S3 origin', async () => {
    const full = await client();
    const c = await full.request<{ bucket: string; dataPrefix: string; s3Origins: string[] }>(
      'GET',
      '/v1/peers/config',
    );
    expect(c).toEqual({
      bucket: BUCKET,
      dataPrefix: DATA_PREFIX,
      s3Origins: [new URL(stack.dev.s3Endpoint ?? '').origin],
    });
  });

  // With Redis first (when installed), then PostgreSQL once redis-server is gone.
  const backends = ['redis', 'postgres'] as const;
  for (const backend of backends) {
    it(`binds a peer id to the token that registered it (${backend})`, async () => {
      if (backend === 'redis' && !redis) return;
      if (backend === 'postgres' && redis) {
        await redis.stop();
        redis = undefined;
      }
      const [a, b] = [await client(), await client()];
      const id = `node-${backend}`;
      await beat(a, id, '10.0.0.1:7431');
      // Another token cannot take the id over or move its address
      await expect(beat(b, id, '10.6.6.6:7431')).rejects.toMatchObject({ code: 'conflict' });
      await expect(beat(b, id, '10.6.6.6:7431')).rejects.toThrow(/registered by another token/);
      // The owner refreshes (and may move) its own registration
      await beat(a, id, '10.0.0.2:7431');
      expect((await list(b)).find((p) => p.id === id)?.address).toBe('10.0.0.2:7431');
      // Once the registration lapses (TTL 5 s), the id is free again
      await new Promise((r) => setTimeout(r, 5_500));
      await beat(b, id, '10.0.0.3:7431');
      await expect(beat(a, id, '10.0.0.1:7431')).rejects.toMatchObject({ code: 'conflict' });
      expect((await list(a)).find((p) => p.id === id)?.address).toBe('10.0.0.3:7431');
    });
  }
});
