import { describe, expect, it } from 'vitest';
import {
  DEFAULT_READ_AHEAD,
  effectiveReadAheadMax,
  PrefetchBudget,
  ReadAhead,
} from '../../../mount-client/prefetch/read-ahead.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const opts = { initialBytes: 1 * MiB, maxBytes: 64 * MiB, toleranceBytes: 256 * KiB };

describe('ReadAhead', () => {
  it('grows 1 → 64 MiB over a sequential stream of 128 KiB reads and stays capped', () => {
    const ra = new ReadAhead(opts);
    const windows: number[] = [];
    for (let i = 0; i < 10; i++) windows.push(ra.onRead(i * 128 * KiB, 128 * KiB) / MiB);
    expect(windows).toEqual([1, 2, 4, 8, 16, 32, 64, 64, 64, 64]);
  });

  it('resets on a seek and regrows from the initial window', () => {
    const ra = new ReadAhead(opts);
    for (let i = 0; i < 8; i++) ra.onRead(i * 128 * KiB, 128 * KiB);
    expect(ra.onRead(500 * MiB, 4 * KiB)).toBe(0);
    expect(ra.windowBytes).toBe(0);
    expect(ra.onRead(500 * MiB + 4 * KiB, 128 * KiB)).toBe(1 * MiB);
  });

  it('does not prefetch for random 4 KiB reads, nor for a first read away from offset 0', () => {
    const ra = new ReadAhead(opts);
    expect(ra.onRead(10 * MiB, 4 * KiB)).toBe(0);
    for (const off of [3, 90, 17, 55, 1].map((x) => x * MiB)) expect(ra.onRead(off, 4 * KiB)).toBe(0);
  });

  it('is random access again when a reader goes back into the stretch its stream already read', () => {
    // A reader that streams a file and then reads records back inside it (an index, a checksum
    // pass then lookups): those reads are seeks, or every 4 KiB lookup keeps the 64 MiB window
    // and loads a whole block from the disk cache (data-path.ts readNowInto).
    const ra = new ReadAhead(DEFAULT_READ_AHEAD);
    for (let off = 0; off < 32 * MiB; off += 128 * KiB) ra.onRead(off, 128 * KiB);
    expect(ra.windowBytes).toBe(64 * MiB);
    for (const off of [5, 20, 11, 2].map((x) => x * MiB)) expect(ra.onRead(off, 4 * KiB)).toBe(0);
  });

  it('tolerates slightly reordered kernel reads', () => {
    const ra = new ReadAhead(opts);
    ra.onRead(0, 128 * KiB);
    ra.onRead(256 * KiB, 128 * KiB); // arrived before the 128 KiB one
    expect(ra.onRead(128 * KiB, 128 * KiB)).toBe(4 * MiB);
  });
});

describe('ReadAhead.absorb (reads the FUSE addon served from a lent block)', () => {
  it('continues the run from where the addon stopped and grows the window as if each read came here', () => {
    const ra = new ReadAhead(opts);
    ra.onRead(0, 128 * KiB);
    // The addon served the rest of the first 8 MiB block: 63 reads.
    ra.absorb(8 * MiB, 63);
    expect(ra.windowBytes).toBe(64 * MiB);
    expect(ra.continues(8 * MiB)).toBe(true);
    expect(ra.onRead(8 * MiB, 128 * KiB)).toBe(64 * MiB);
  });

  it('grows by one doubling per absorbed read', () => {
    const ra = new ReadAhead(opts);
    ra.onRead(0, 128 * KiB);
    ra.absorb(384 * KiB, 2);
    expect(ra.windowBytes).toBe(4 * MiB);
  });

  it('a block’s first reads arriving in any order after the addon’s reads keep the run (default slack)', () => {
    const ra = new ReadAhead(DEFAULT_READ_AHEAD);
    ra.onRead(0, 128 * KiB);
    ra.absorb(8 * MiB, 63);
    // The kernel had four reads of the next block in flight; the fourth reached JavaScript first.
    for (const k of [3, 1, 0, 2]) expect(ra.onRead(8 * MiB + k * 128 * KiB, 128 * KiB)).toBe(64 * MiB);
    // Far away is still a seek.
    expect(ra.onRead(300 * MiB, 4 * KiB)).toBe(0);
  });

  it('a block’s first read arriving after the addon served much of that block keeps the run', () => {
    const ra = new ReadAhead(DEFAULT_READ_AHEAD);
    ra.onRead(0, 128 * KiB);
    ra.absorb(8 * MiB, 63);
    ra.onRead(8 * MiB + 384 * KiB, 128 * KiB); // JavaScript lends the block on this one...
    ra.absorb(12 * MiB, 28); // ...the addon serves 3.5 MiB of it before the block's first read gets here
    expect(ra.onRead(8 * MiB, 128 * KiB)).toBe(64 * MiB);
  });

  it('changes nothing outside a run, or for reads behind the run', () => {
    const ra = new ReadAhead(opts);
    ra.absorb(8 * MiB, 10);
    expect(ra.windowBytes).toBe(0);
    expect(ra.continues(8 * MiB)).toBe(false);
    ra.onRead(0, 128 * KiB);
    ra.onRead(128 * KiB, 128 * KiB);
    ra.absorb(128 * KiB, 5);
    expect(ra.windowBytes).toBe(2 * MiB);
  });
});

describe('PrefetchBudget', () => {
  it('admits up to its capacity and frees on release', () => {
    const b = new PrefetchBudget(16);
    expect(b.tryAcquire(8)).toBe(true);
    expect(b.tryAcquire(8)).toBe(true);
    expect(b.tryAcquire(1)).toBe(false);
    b.release(8);
    expect(b.inflightBytes).toBe(8);
    expect(b.tryAcquire(8)).toBe(true);
  });
});

describe('effectiveReadAheadMax', () => {
  const MiB = 1024 * 1024;
  it('caps the window at half the memory tier, never below one block, and leaves it without a tier', () => {
    expect(effectiveReadAheadMax(64 * MiB, 256 * MiB, 8 * MiB)).toBe(64 * MiB);
    expect(effectiveReadAheadMax(64 * MiB, 64 * MiB, 8 * MiB)).toBe(32 * MiB);
    expect(effectiveReadAheadMax(64 * MiB, 8 * MiB, 8 * MiB)).toBe(8 * MiB);
    expect(effectiveReadAheadMax(64 * MiB, 0, 8 * MiB)).toBe(64 * MiB);
  });
});
