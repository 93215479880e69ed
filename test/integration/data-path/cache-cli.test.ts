/**
 * `strata cache stats|verify|clear` as a user runs them (the real CLI in a child process).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { CACHE_LAYOUT, DiskBlockStore } from '../../../mount-client/block-cache/disk-cache.ts';
import { parseHeader } from '../../../mount-client/block-cache/format.ts';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'strata-cache-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function strata(...args: string[]): Promise<{ code: number; out: unknown }> {
  try {
    const { stdout } = await run(process.execPath, ['bin/strata.js', ...args, '--cache-dir', dir, '--json']);
    return { code: 0, out: JSON.parse(stdout) };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout ? JSON.parse(e.stdout) : e.stderr };
  }
}

it('reports, verifies (finding a corrupted block) and clears the cache', async () => {
  // Prepare: three blocks written by the real cache, then one payload byte flipped.
  const store = await DiskBlockStore.open({ dir, capacityBytes: 1 << 30, minFreeBytes: 0 });
  const object = { bucket: 'b', key: 'dir/file.bin', size: 300_000, etag: '"abc"' };
  for (let i = 0; i < 3; i++) {
    await store.put(
      { object, index: i, blockSize: 131_072 },
      Buffer.alloc(i < 2 ? 131_072 : 300_000 - 262_144, i),
    );
  }
  await store.close();
  const files = readdirSync(join(dir, CACHE_LAYOUT, 'blocks'), {
    recursive: true,
    withFileTypes: true,
  }).filter((e) => e.isFile());
  // The victim is picked by the block its header names, not by readdir order (which varies with the
  // file system): block 2 is short and zero-padded, so flipping its last byte is reported as
  // 'padding'; block 0 is a full block, so its last byte is payload ('payload-checksum').
  const victim = files
    .map((f) => join(f.parentPath, f.name))
    .find((f) => {
      const h = parseHeader(readFileSync(f));
      return !('error' in h) && h.index === 0;
    }) as string;
  const bytes = readFileSync(victim);
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 0x55;
  writeFileSync(victim, bytes);

  // Act + Assess
  const stats = await strata('cache', 'stats');
  expect(stats).toMatchObject({ code: 0, out: { blocks: 3, mountedBy: null } });
  const verify = await strata('cache', 'verify');
  expect(verify).toMatchObject({
    code: 1,
    out: { checked: 3, bad: 1, removed: 1, reasons: { 'payload-checksum': 1 } },
  });
  const clear = await strata('cache', 'clear');
  expect(clear).toMatchObject({ code: 0, out: { removedBlocks: 2 } });
  expect(await strata('cache', 'stats')).toMatchObject({ out: { blocks: 0, bytes: 0 } });
});

it('a cache directory that does not exist is an error naming --cache-dir, and is not created', async () => {
  const missing = join(dir, 'typo');
  for (const sub of ['stats', 'verify', 'clear']) {
    const r = await run(process.execPath, ['bin/strata.js', 'cache', sub, '--cache-dir', missing]).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => err,
    );
    expect(r.code, sub).toBe(1);
    expect(r.stderr, sub).toContain(
      `no block cache at ${missing}: the directory does not exist; pass the --cache-dir`,
    );
    expect(existsSync(missing), sub).toBe(false);
  }
});

it('refuses to clear a cache owned by a running mount', async () => {
  const owner = await DiskBlockStore.open({ dir, capacityBytes: 1 << 30, minFreeBytes: 0 });
  try {
    // Our own PID owns the lock, and the CLI is a different process: it must see a live owner.
    const r = await strata('cache', 'clear');
    expect(r.code).not.toBe(0);
    expect(String(r.out)).toMatch(/in use by process \d+/);
    expect(await strata('cache', 'stats')).toMatchObject({ out: { mountedBy: process.pid } });
  } finally {
    await owner.close();
  }
});
