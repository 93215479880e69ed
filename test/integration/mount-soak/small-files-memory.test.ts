/**
 * Long-running mounts: the memory tier's footprint must follow its byte cap. A small file's block
 * used to be a view of a whole pooled block store (1 MiB here, 8 MiB by default) while the tier
 * counted only the view's length, so every small file read kept a block of memory alive — found
 * by bench/mount/soak.ts as external memory growing with the number of distinct files read.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ObjectVersion } from '../../../mount-client/block-cache/types.ts';
import { createDataPath } from '../../../mount-client/object-client/data-path.ts';
import { type S3Fixture, startS3 } from '../data-path/s3-fixture.ts';

const MiB = 1024 * 1024;
let s3: S3Fixture;
let dir: string;

beforeAll(async () => {
  s3 = await startS3();
  dir = mkdtempSync(join(tmpdir(), 'strata-soak-small-'));
});
afterAll(async () => {
  await s3?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('many small files through the data path', () => {
  it('hold no pooled block store each, and stay served from memory', async () => {
    // Prepare: 120 distinct 4 KiB objects, a 1 MiB block size
    const files: Array<{ v: ObjectVersion; body: Buffer }> = [];
    for (let i = 0; i < 120; i++) {
      const body = randomBytes(4096);
      files.push({ v: await s3.put(`small/f${i}.bin`, body), body });
    }
    const dp = await createDataPath({
      cacheDir: dir,
      cacheSizeBytes: 256 * MiB,
      minFreeBytes: 0,
      blockSize: MiB,
      region: s3.region,
      endpoint: s3.endpoint,
      metrics: new Registry(),
      retry: { baseDelayMs: 1, maxDelayMs: 5 },
    });
    try {
      // Act: read each file, then read them all again
      for (const f of files) {
        const r = dp.open(f.v);
        expect(Buffer.from(await r.read(0, 4096)).equals(f.body)).toBe(true);
        r.close();
      }
      const gets = dp.stats().s3.gets;
      for (const f of files) {
        const r = dp.open(f.v);
        expect(Buffer.from(await r.read(0, 4096)).equals(f.body)).toBe(true);
        r.close();
      }
      // Assess: every block is in the memory tier, and none of them took a 1 MiB pool store
      const st = dp.stats();
      expect(st.s3.gets).toBe(gets);
      expect(st.memory.entries).toBe(120);
      expect(st.pool.allocated + st.pool.slabPieces).toBe(0);
    } finally {
      await dp.close();
    }
  });
});
