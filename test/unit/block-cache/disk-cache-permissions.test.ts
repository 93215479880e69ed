/**
 * The block cache holds object bytes in plain files. A mount is private to its user unless
 * --allow-other, so the cache must be too (QA sweep 2): the versioned cache root is 0700 — created
 * so, and tightened when an older run left it world-readable — and nothing under it is reachable
 * by other local users whatever the mode of the block files.
 */
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CACHE_LAYOUT, DiskBlockStore } from '../../../mount-client/block-cache/disk-cache.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function modeOf(p: string): Promise<number> {
  return (await stat(p)).mode & 0o777;
}

describe('block cache permissions', () => {
  it('creates the cache root private to the mounting user', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'strata-cache-perm-'));
    dirs.push(dir);
    const s = await DiskBlockStore.open({ dir, capacityBytes: 1e6, minFreeBytes: 0 });
    try {
      expect(await modeOf(join(dir, CACHE_LAYOUT))).toBe(0o700);
    } finally {
      await s.close();
    }
  });

  it('tightens a world-readable root left by an earlier version', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'strata-cache-perm-'));
    dirs.push(dir);
    await mkdir(join(dir, CACHE_LAYOUT, 'blocks'), { recursive: true, mode: 0o755 });
    const s = await DiskBlockStore.open({ dir, capacityBytes: 1e6, minFreeBytes: 0 });
    try {
      expect(await modeOf(join(dir, CACHE_LAYOUT))).toBe(0o700);
    } finally {
      await s.close();
    }
  });
});
