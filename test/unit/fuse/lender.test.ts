/**
 * The lender's bookkeeping (fuse/lender.ts) against a fake addon that keeps the same table the C
 * side keeps: what is lent, what is taken back and when, and that every lent block is released
 * exactly once. The C table itself is exercised in native-lending.test.ts and, with real reads,
 * in test/fuse/lent-reads.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { Lender, type LendingFs, type LentBlock } from '../../../mount-client/fuse/lender.ts';
import type { LendingAddon } from '../../../mount-client/fuse/native.ts';

const BS = 1024;
const thread = Buffer.alloc(8);

function fakeAddon(refuse = () => false) {
  const table = new Map<number, Map<number, Buffer>>();
  const progress = new Map<number, [number, number, number]>();
  const calls: string[] = [];
  const addon: LendingAddon = {
    lend: (t, fh, start, data) => {
      expect(t).toBe(thread);
      calls.push(`lend ${fh}@${start}`);
      if (refuse()) return false;
      const mine = table.get(fh) ?? new Map<number, Buffer>();
      if (mine.size >= 4 && !mine.has(start)) return false;
      mine.set(start, data);
      table.set(fh, mine);
      return true;
    },
    unlend: (_t, fh, start) => {
      calls.push(`unlend ${fh}@${start}`);
      if (start < 0) table.delete(fh);
      else table.get(fh)?.delete(start);
    },
    progress: (_t, fh, out) => {
      const p = progress.get(fh) ?? [0, 0, 0];
      out.set(p);
      progress.set(fh, [p[0], 0, 0]);
    },
  };
  return { addon, table, progress, calls };
}

function fakeFs() {
  const released: string[] = [];
  const absorbed: [number, number, number, number][] = [];
  let lendable = true;
  const fs: LendingFs & { released: string[]; absorbed: typeof absorbed; off(): void } = {
    released,
    absorbed,
    off: () => {
      lendable = false;
    },
    lend: (handle, offset): LentBlock | undefined => {
      if (!lendable) return undefined;
      const start = Math.floor(offset / BS) * BS;
      return {
        start,
        data: Buffer.alloc(BS, start / BS),
        eof: false,
        release: () => released.push(`${handle}@${start}`),
      };
    },
    absorb: (handle, end, reads, bytes) => absorbed.push([handle, end, reads, bytes]),
  };
  return fs;
}

describe('Lender', () => {
  it('lends nothing before the mount is attached', () => {
    const { addon, calls } = fakeAddon();
    const lender = new Lender(addon, fakeFs());
    lender.offer(1, 0);
    lender.sync(1);
    expect(calls).toEqual([]);
    expect(lender.stats().blocks).toBe(0);
  });

  it('lends each block once, keeps two per handle, and releases what it takes back', () => {
    const { addon, table, calls } = fakeAddon();
    const fs = fakeFs();
    const lender = new Lender(addon, fs);
    lender.attach(thread);
    lender.offer(1, 0);
    lender.offer(1, 100); // same block: already lent
    lender.offer(1, BS);
    expect(calls).toEqual(['lend 1@0', `lend 1@${BS}`]);
    lender.offer(1, 2 * BS + 5);
    expect(calls.slice(2)).toEqual(['unlend 1@0', `lend 1@${2 * BS}`]);
    expect(fs.released).toEqual(['1@0']);
    expect([...(table.get(1)?.keys() ?? [])]).toEqual([BS, 2 * BS]);
    expect(lender.stats()).toMatchObject({ blocks: 2, lent: 3, refused: 0 });
  });

  it('hands the reads the addon served to the reader before the next JavaScript read, and at release', () => {
    const { addon, progress } = fakeAddon();
    const fs = fakeFs();
    const lender = new Lender(addon, fs);
    lender.attach(thread);
    lender.sync(1); // nothing lent: the addon is not asked
    expect(fs.absorbed).toEqual([]);
    lender.offer(1, 0);
    progress.set(1, [BS, 7, 7 * 128]);
    lender.sync(1);
    lender.sync(1); // counters were reset by the first call
    expect(fs.absorbed).toEqual([[1, BS, 7, 7 * 128]]);
    progress.set(1, [BS + 10, 1, 10]);
    lender.release(1);
    expect(fs.absorbed).toEqual([
      [1, BS, 7, 7 * 128],
      [1, BS + 10, 1, 10],
    ]);
    expect(lender.stats()).toMatchObject({ blocks: 0, reads: 8, bytes: 7 * 128 + 10 });
  });

  it('release takes back all of a handle’s blocks, each released once; other handles keep theirs', () => {
    const { addon, table, calls } = fakeAddon();
    const fs = fakeFs();
    const lender = new Lender(addon, fs);
    lender.attach(thread);
    lender.offer(1, 0);
    lender.offer(1, BS);
    lender.offer(2, 0);
    lender.release(1);
    lender.release(1); // twice: nothing more
    expect(calls.filter((c) => c.startsWith('unlend'))).toEqual(['unlend 1@-1']);
    expect(fs.released.sort()).toEqual(['1@0', `1@${BS}`]);
    expect(table.has(1)).toBe(false);
    expect(table.get(2)?.size).toBe(1);
    lender.close();
    expect(fs.released.sort()).toEqual(['1@0', `1@${BS}`, '2@0']);
    expect(lender.stats().blocks).toBe(0);
  });

  it('stops lending new handles at the global cap, but a handle at its own cap still rotates', () => {
    const { addon, calls } = fakeAddon();
    const fs = fakeFs();
    const lender = new Lender(addon, fs, 3);
    lender.attach(thread);
    lender.offer(1, 0);
    lender.offer(1, BS);
    lender.offer(2, 0);
    lender.offer(3, 0); // cap reached: not lent, and the fs is not asked
    expect(calls).toEqual(['lend 1@0', `lend 1@${BS}`, 'lend 2@0']);
    lender.offer(1, 2 * BS); // rotates within handle 1: the count stays at the cap
    expect(lender.stats().blocks).toBe(3);
    expect(fs.released).toEqual(['1@0']);
  });

  it('a block the addon refuses (its slot is another handle’s) is released at once', () => {
    let refuse = true;
    const { addon } = fakeAddon(() => refuse);
    const fs = fakeFs();
    const lender = new Lender(addon, fs);
    lender.attach(thread);
    lender.offer(257, 0);
    expect(fs.released).toEqual(['257@0']);
    expect(lender.stats()).toMatchObject({ blocks: 0, lent: 0, refused: 1 });
    refuse = false;
    lender.offer(257, 0);
    expect(lender.stats()).toMatchObject({ blocks: 1, lent: 1 });
  });

  it('asks the filesystem and lends nothing when the reader has no block to lend', () => {
    const { addon, calls } = fakeAddon();
    const fs = fakeFs();
    fs.off();
    const lender = new Lender(addon, fs);
    lender.attach(thread);
    lender.offer(1, 0);
    expect(calls).toEqual([]);
  });
});
