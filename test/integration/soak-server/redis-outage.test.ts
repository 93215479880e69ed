/**
 * Redis stopped and restarted under the local stack (issue 3's cache; found by the server soak's
 * review of lost invalidations). Redis keeps its data across the restart, as Upstash does. While it
 * is down every request still succeeds from PostgreSQL; an overwrite indexed meanwhile cannot
 * deliver its invalidation, and the entry written before the outage is still in Redis afterwards.
 * It must never be served: the indexer advances the cache epoch in PostgreSQL instead
 * (adapters/pg/cache-epoch.ts), and readers ignore entries of an older epoch. Before the fix the
 * old answer came back from Redis once its breaker closed, for up to the entry's 60 s TTL.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ListResponse, ResolveResponse } from '../../../functions/core/api-types.ts';
import { freePort, isListening } from '../../../local/ports.ts';
import { stopChild } from '../../../local/redis.ts';
import { BUCKET, DATA_PREFIX, type LocalStack, startStack } from '../../../local/stack.ts';
import { missing } from '../../support/requirements.ts';

const noRedis = missing('redis-server');
let dir: string;
let stackDir: string;
let port: number;
let redis: ChildProcess | undefined;
let stack: LocalStack;

/** redis-server with an append-only file, so a restart keeps every entry (like a managed Redis). */
async function startRedis(): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--appendonly',
      'yes',
      '--appendfsync',
      'always',
    ].concat(['--save', '', '--loglevel', 'warning']),
    { stdio: 'ignore' },
  );
  for (let i = 0; i < 300 && !(await isListening(port, 200)); i++) {
    if (child.exitCode !== null)
      throw new Error(`redis-server exited with ${child.exitCode} on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return child;
}

beforeAll(async () => {
  if (noRedis) return;
  dir = await mkdtemp(join(tmpdir(), 'strata-redis-outage-'));
  stackDir = await mkdtemp(join(tmpdir(), 'strata-redis-outage-stack-'));
  port = await freePort();
  redis = await startRedis();
  stack = await startStack({
    stateDir: stackDir,
    apiPort: 0,
    scheduleIntervalMs: 0,
    log: () => {},
    redis: { url: `redis://127.0.0.1:${port}` },
    env: {
      // No in-process level: every read goes to Redis, so the test sees exactly what Redis serves.
      STRATA_CACHE_TTL_MS: '0',
      POWERTOOLS_METRICS_DISABLED: 'true',
      POWERTOOLS_LOG_LEVEL: 'SILENT',
      STRATA_LOG_LEVEL: 'SILENT',
    },
  });
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  if (redis) await stopChild(redis);
  if (dir) await rm(dir, { recursive: true, force: true });
  if (stackDir) await rm(stackDir, { recursive: true, force: true });
});

async function api<T>(path: string, query: Record<string, string>): Promise<{ status: number; body: T }> {
  const url = new URL(stack.dev.apiUrl + path);
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  const res = await request(url, {
    headers: { authorization: `Bearer ${stack.adminToken}` },
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  return { status: res.statusCode, body: (await res.body.json()) as T };
}

/** The raw Redis value of a key, through the stack's Upstash REST adapter; undefined if unreachable. */
async function redisGet(key: string): Promise<string | null | undefined> {
  const r = stack.dev.redis;
  if (!r) throw new Error('the stack has no Redis');
  try {
    const res = await request(r.url, {
      method: 'POST',
      headers: { authorization: `Bearer ${r.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(['GET', key]),
      headersTimeout: 5000,
      bodyTimeout: 5000,
    });
    const body = (await res.body.json()) as { result?: string | null };
    return res.statusCode === 200 ? (body.result ?? null) : undefined;
  } catch {
    return undefined;
  }
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const put = (path: string, body: string) =>
  stack.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: DATA_PREFIX + path.slice(1), Body: body }));

describe.skipIf(noRedis)('Redis stopped and restarted', () => {
  it('an overwrite indexed while Redis was down is never served from a pre-outage entry', async () => {
    // Prepare: v1 indexed and cached in Redis (resolve answer and list page).
    await put('/o/x', 'v1');
    await stack.drain();
    const v1 = await api<ResolveResponse>('/v1/resolve', { path: '/o/x' });
    expect(v1.status).toBe(200);
    expect((await api<ListResponse>('/v1/list', { path: '/o' })).body.entries[0]?.size).toBe(2);
    const ns = stack.env.STRATA_CACHE_NAMESPACE;
    expect(ns).toBeTruthy();
    const entryKey = `strata:${ns}:r:/o/x`;
    await until('the v1 entry in Redis', async () =>
      (await redisGet(entryKey))?.includes(v1.body.etag as string) ? true : undefined,
    );

    // Act: Redis goes away; an overwrite is indexed (its invalidation cannot be delivered).
    if (redis) await stopChild(redis);
    await put('/o/x', 'version two');
    await stack.drain();
    const during = await api<ResolveResponse>('/v1/resolve', { path: '/o/x' });
    expect(during.status).toBe(200);
    expect(during.body.size).toBe(11);
    expect((await api<ListResponse>('/v1/list', { path: '/o' })).body.entries[0]?.size).toBe(11);

    redis = await startRedis();
    // The pre-outage entry survived the restart: without the epoch it would be served again.
    const survived = await until('Redis reachable again', () =>
      redisGet(entryKey).then((v) => v ?? undefined),
    );
    expect(survived).toContain(v1.body.etag);

    // Assess: every answer is v2 until a reader has re-cached v2 in Redis (client reconnected).
    await until('v2 cached in Redis again', async () => {
      const r = await api<ResolveResponse>('/v1/resolve', { path: '/o/x' });
      expect(r.status).toBe(200);
      expect(r.body.etag).toBe(during.body.etag);
      expect((await api<ListResponse>('/v1/list', { path: '/o' })).body.entries[0]?.size).toBe(11);
      return (await redisGet(entryKey))?.includes(during.body.etag as string) ? true : undefined;
    });
  });
});
