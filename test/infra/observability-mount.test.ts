/**
 * The mount client's Prometheus series (docs/operations.md, "Mount metrics") move on the code path
 * they describe, read from the registry's exposition text as a scraper sees it: a data path over
 * a real S3 emulator (fauxqs) and a real cache directory. The FUSE op series are checked on a live
 * mount by the runbook's procedure; peer series by test/fuse/peers.test.ts and the peers unit tests.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ObjectVersion } from '../../mount-client/block-cache/types.ts';
import { createDataPath, type DataPathOptions } from '../../mount-client/object-client/data-path.ts';
import { S3ReadError } from '../../mount-client/object-client/errors.ts';
import { type S3Fixture, startS3 } from '../integration/data-path/s3-fixture.ts';
import { filesUnder } from './observability-files.ts';

const KiB = 1024;
const BS = 256 * KiB; // small blocks keep the test fast; nothing in the data path depends on 8 MiB

let s3: S3Fixture;
let v: ObjectVersion;
let body: Buffer;
const dirs: string[] = [];
const newDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'strata-obs-mount-'));
  dirs.push(d);
  return d;
};

beforeAll(async () => {
  s3 = await startS3();
  body = randomBytes(4 * BS);
  v = await s3.put('obs/four-blocks.bin', body);
}, 60_000);
afterAll(async () => {
  await s3?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function open(registry: Registry, o: Partial<DataPathOptions> = {}) {
  return createDataPath({
    cacheDir: o.cacheDir ?? newDir(),
    cacheSizeBytes: 64 * BS,
    blockSize: BS,
    region: s3.region,
    endpoint: s3.endpoint,
    metrics: registry,
    minFreeBytes: 0,
    retry: { baseDelayMs: 1, maxDelayMs: 5 },
    ...o,
  });
}

/** Sum of a series' samples in the exposition text, over samples whose labels include `labels`. */
async function sample(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const text = await registry.metrics();
  let sum = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    const m = /^([a-z0-9_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, val]) => got[k] === val)) {
      sum += Number(m[3]);
      seen = true;
    }
  }
  return seen ? sum : Number.NaN;
}

/** Reads the whole object in 128 KiB requests, as the kernel does. */
async function readAll(dp: Awaited<ReturnType<typeof open>>): Promise<Buffer> {
  const r = dp.open(v);
  const parts: Buffer[] = [];
  for (let off = 0; off < v.size; off += 128 * KiB) parts.push(Buffer.from(await r.read(off, 128 * KiB)));
  r.close();
  return Buffer.concat(parts);
}

/** Polls until `cond` holds (background cache writes finish on their own schedule). */
async function until(cond: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('mount metrics move on their code paths', () => {
  it('a cold then warm read: S3 GETs, tiers, bytes read, disk bytes held, read-ahead', async () => {
    const reg = new Registry();
    const dp = await open(reg);
    expect((await readAll(dp)).equals(body)).toBe(true);
    expect((await readAll(dp)).equals(body)).toBe(true);
    await until(
      async () => (await sample(reg, 'strata_cache_bytes', { tier: 'disk' })) >= 4 * BS,
      'four blocks on disk',
    );
    expect(await sample(reg, 'strata_read_bytes_total')).toBe(2 * body.length);
    expect(await sample(reg, 'strata_s3_get_requests_total', { outcome: 'ok' })).toBe(4);
    expect(await sample(reg, 'strata_s3_get_duration_seconds_count')).toBe(4);
    expect(await sample(reg, 'strata_block_requests_total', { tier: 's3', result: 'hit' })).toBe(4);
    expect(await sample(reg, 'strata_block_bytes_total', { tier: 's3' })).toBe(body.length);
    // The second pass is served from memory: hits, and no further S3 GET.
    expect(
      await sample(reg, 'strata_block_requests_total', { tier: 'memory', result: 'hit' }),
    ).toBeGreaterThan(0);
    // A memory hit counts its whole block, not the 128 KiB read; the help text must say so, or a
    // dashboard of "bytes served per tier" overstates the memory tier by block/read size.
    const memHits = await sample(reg, 'strata_block_requests_total', { tier: 'memory', result: 'hit' });
    expect(await sample(reg, 'strata_block_bytes_total', { tier: 'memory' })).toBe(memHits * BS);
    expect(await reg.metrics()).toMatch(/# HELP strata_block_bytes_total .*whole block per memory hit/);
    expect(await sample(reg, 'strata_prefetch_window_bytes_count')).toBeGreaterThan(0);
    expect(await sample(reg, 'strata_prefetch_inflight_bytes')).toBe(0);
    await dp.close();
  });

  it('a corrupted cached block: counted by reason, refetched, right bytes', async () => {
    const reg = new Registry();
    const cacheDir = newDir();
    const first = await open(reg, { cacheDir });
    await readAll(first);
    await first.close();
    const blocks = filesUnder(cacheDir, '.blk');
    expect(blocks.length).toBe(4);
    // One payload byte flipped (past the 4 KiB header) in one block file.
    const f = blocks[0]!;
    const b = readFileSync(f);
    b[8192 + 100]! ^= 0xff;
    writeFileSync(f, b);
    // No memory tier: the reads go to disk, where verification catches the flip.
    const second = await open(reg, { cacheDir, memoryCacheBytes: 0 });
    expect((await readAll(second)).equals(body)).toBe(true);
    expect(await sample(reg, 'strata_cache_corrupt_blocks_total', { reason: 'payload-checksum' })).toBe(1);
    expect(await sample(reg, 'strata_block_requests_total', { tier: 'disk', result: 'hit' })).toBeGreaterThan(
      0,
    );
    // The bad block came from S3 again: 4 GETs for the first pass, 1 for the refetch.
    expect(await sample(reg, 'strata_s3_get_requests_total', { outcome: 'ok' })).toBe(5);
    await second.close();
  });

  it('a cache over its cap evicts, by reason and bytes', async () => {
    const reg = new Registry();
    // Room for two blocks with their headers; read-ahead off so blocks arrive in order.
    const dp = await open(reg, {
      cacheSizeBytes: 2 * BS + 8 * KiB,
      memoryCacheBytes: 0,
      readAheadMaxBytes: 0,
    });
    expect((await readAll(dp)).equals(body)).toBe(true);
    await until(
      async () => (await sample(reg, 'strata_cache_evictions_total', { reason: 'capacity' })) >= 1,
      'an eviction',
    );
    expect(await sample(reg, 'strata_cache_evicted_bytes_total')).toBeGreaterThanOrEqual(BS);
    await dp.close();
  });

  it('S3 failing: retries by reason, attempts by outcome, and the read that failed for good', async () => {
    const reg = new Registry();
    const dp = await open(reg, {
      // Every attempt answers 503: deterministic, no randomness.
      faults: { errorRate: 1, random: () => 0 },
      retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5 },
      readDeadlineMs: 0,
      // One block fetch only: no read-ahead of the next blocks.
      readAheadMaxBytes: 0,
    });
    const err = await dp
      .open(v)
      .read(0, 4096)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(S3ReadError);
    expect(await sample(reg, 'strata_s3_retries_total', { reason: 'http-5xx' })).toBe(2);
    expect(await sample(reg, 'strata_s3_get_requests_total', { outcome: 'http-5xx' })).toBe(3);
    // Retries exhausted: the reader gets an S3ReadError (EIO), classed io_error.
    expect(await sample(reg, 'strata_s3_errors_total', { class: 'io_error' })).toBe(1);
    await dp.close();
  });
});
