/**
 * Discovery through the real API registry (POST /v1/peers/heartbeat, GET /v1/peers) of the local
 * stack — Redis TTL when redis-server is installed, PostgreSQL otherwise: nodes find each other
 * without a static list, share blocks, a node that joins later is picked up without a restart, and
 * one that stops heartbeating drops out when its TTL lapses.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { type LocalRedis, startRedisServer } from '../../../local/redis.ts';
import { BUCKET, DATA_PREFIX, type LocalStack, REGION, startStack } from '../../../local/stack.ts';
import { ApiClient } from '../../../mount-client/api/client.ts';
import type { ObjectVersion } from '../../../mount-client/block-cache/types.ts';
import { apiRegistry } from '../../../mount-client/peers/index.ts';
import { servePolicy } from '../../../mount-client/peers/mount-extension.ts';
import { missing } from '../../support/requirements.ts';
import { type FleetNode, gets, readAll, sha256, startNode } from './fleet.ts';

const BLOCK = 256 * 1024;
// Refreshes run every 200 ms, but on a busy machine an API round trip can take seconds.
const WAIT = { timeout: 20_000, interval: 100 };
let dir: string;
let stack: LocalStack;
let redis: LocalRedis | undefined;
let api: ApiClient;
const nodes: FleetNode[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strata-peers-registry-'));
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
  api = new ApiClient({ apiUrl: stack.dev.apiUrl, token: stack.adminToken });
});

afterAll(async () => {
  for (const n of nodes) await n.close().catch(() => undefined);
  await api?.close();
  await stack?.stop();
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function node(name: string): Promise<FleetNode> {
  // The serve policy as a mount gets it: from GET /v1/peers/config (the stack's bucket and prefix).
  const policy = await servePolicy(api, false);
  expect(policy).toEqual({ bucket: BUCKET, dataPrefix: DATA_PREFIX });
  const n = await startNode({
    name,
    s3: { region: REGION, endpoint: stack.dev.s3Endpoint ?? '' },
    blockSize: BLOCK,
    // Fast refresh so the test sees joins in well under a second. A 5 s header wait (default 1 s):
    // the test asserts B makes no S3 GET of its own, and on a loaded machine an owner in this same
    // process can miss 1 s, so B reads that block from S3 (timeoutMs 1 reproduces: 7 GETs).
    peering: {
      policy,
      registry: apiRegistry(api),
      refreshMs: 200,
      heartbeatMs: 200,
      probeTickMs: 50,
      timeoutMs: 5_000,
    },
  });
  nodes.push(n);
  return n;
}

async function put(key: string, body: Buffer): Promise<ObjectVersion> {
  const Key = `${DATA_PREFIX}${key}`;
  await stack.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: body }));
  const head = await stack.s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key }));
  return { bucket: BUCKET, key: Key, size: Number(head.ContentLength), etag: String(head.ETag) };
}

it('nodes find each other through the registry, share blocks, pick up a joiner and drop a leaver', async () => {
  // Prepare
  const [a, b] = [await node('a'), await node('b')];
  await vi.waitFor(() => {
    expect(a.peering.membership.live().sort()).toEqual([a.address, b.address].sort());
    expect(b.peering.membership.live().sort()).toEqual([a.address, b.address].sort());
  }, WAIT);
  const body = randomBytes(2 * 1024 * 1024 + 3);
  const v = await put('registry/one.bin', body);
  // Act: A reads, then B
  expect(await readAll(a, v)).toBe(sha256(body));
  const before = gets(b);
  expect(await readAll(b, v)).toBe(sha256(body));
  // Assess: B needed no S3 GET of its own
  expect(gets(b) - before).toBe(0);
  // A third node joins: both others see it without a restart, and it reads from the fleet
  const c = await node('c');
  await vi.waitFor(() => {
    for (const n of [a, b, c])
      expect(n.peering.membership.live().sort()).toEqual([a.address, b.address, c.address].sort());
  }, WAIT);
  expect(await readAll(c, v)).toBe(sha256(body));
  expect(c.peering.metrics.stats().hits).toBeGreaterThan(0);
  // C leaves without a word: once its registry TTL (5 s) lapses, A and B drop it
  await c.close();
  nodes.pop();
  await vi.waitFor(
    () => {
      for (const n of [a, b])
        expect(n.peering.membership.snapshot().map((m) => m.address)).not.toContain(c.address);
    },
    { timeout: 20_000, interval: 200 },
  );
  expect(await readAll(b, v)).toBe(sha256(body));
});
