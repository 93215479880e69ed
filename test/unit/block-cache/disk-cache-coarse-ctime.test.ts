/**
 * The disk cache's verify-once-per-open slice reads on a filesystem whose timestamps come from a
 * coarse clock (Linux before 6.13, and filesystems without fine-grained timestamps): an in-place
 * write within the same clock tick as the file's last change leaves ctime unchanged, so the fstat
 * guard alone cannot see it. Simulated here by freezing the ctime fstat reports — and the clock the
 * store reads (Date.now), so the whole test happens within that one tick: the store remembers a
 * verification only once ctime is CTIME_SETTLE_MS old, and with a real clock a stall of that long
 * between the put and the first read (a loaded CI machine) made it trust the block and the test fail.
 */
import * as realFs from 'node:fs';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';

/** ctime per inode as first seen: the "coarse clock" never ticks during a test. */
const frozen = new Map<number, number>();
vi.mock('node:fs', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs')>();
  const fstatSync = ((fd: number, ...rest: unknown[]) => {
    const st = (actual.fstatSync as (...a: unknown[]) => realFs.Stats)(fd, ...rest);
    if (!frozen.has(st.ino)) frozen.set(st.ino, st.ctimeMs);
    st.ctimeMs = frozen.get(st.ino) as number;
    return st;
  }) as typeof actual.fstatSync;
  return { ...actual, default: { ...actual, fstatSync }, fstatSync };
});

const { blockKey } = await import('../../../mount-client/block-cache/block-key.ts');
const { CACHE_LAYOUT, DiskBlockStore } = await import('../../../mount-client/block-cache/disk-cache.ts');
const { parseHeader } = await import('../../../mount-client/block-cache/format.ts');

const dirs: string[] = [];
afterEach(() => {
  vi.useRealTimers();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  frozen.clear();
});

const object = { bucket: 'b', key: 'k', size: 10 * 1000, etag: '"e"' };
const id = { object, index: 0, blockSize: 1000 };

function blockFile(dir: string): string {
  const blocks = join(dir, CACHE_LAYOUT, 'blocks');
  const fan = readdirSync(blocks)[0] as string;
  return join(blocks, fan, readdirSync(join(blocks, fan))[0] as string);
}

describe('DiskBlockStore slice reads, coarse ctime', () => {
  it('a byte corrupted in place right after a verified read is still detected (not served)', async () => {
    // The clock stands still from before the put: the read and the write land in the tick of the
    // file's last change, however long the machine takes between them. Timers stay real.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const dir = mkdtempSync(join(tmpdir(), 'strata-disk-coarse-'));
    dirs.push(dir);
    const corrupt: string[] = [];
    const s = await DiskBlockStore.open({
      dir,
      capacityBytes: 1e6,
      minFreeBytes: 0,
      subBlockBytes: 100,
      onCorrupt: (r) => corrupt.push(r),
    });
    try {
      const payload = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
      await s.put(id, payload);
      const key = blockKey(id);
      const into = Buffer.alloc(100);
      expect(s.readSliceSync(id, key, 300, 400, into)).toBe(100);
      expect(into.equals(payload.subarray(300, 400))).toBe(true);

      // In place, same size, and (coarse clock) the same ctime: the fstat guard sees nothing.
      const file = blockFile(dir);
      const h = parseHeader(realFs.readFileSync(file));
      if ('error' in h) throw new Error(h.error);
      const fd = realFs.openSync(file, 'r+');
      realFs.writeSync(fd, Buffer.from([(payload[350] as number) ^ 0xff]), 0, 1, h.headerLength + 350);
      realFs.closeSync(fd);

      expect(s.readSliceSync(id, key, 300, 400, into)).toBeUndefined();
      expect(corrupt).toEqual(['payload-checksum']);
      expect(s.hasKey(key)).toBe(false);
    } finally {
      await s.close();
    }
  });
});
