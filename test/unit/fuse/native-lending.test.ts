/**
 * The rebuilt addon's lent-block table (scripts/build-fuse-native.mjs) through its N-API functions:
 * slots per handle and mount, four blocks per handle, taking back one or all. Reads from the table
 * happen on FUSE threads only, so they are tested through a real mount (test/fuse/lent-reads.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { lendingAddon } from '../../../mount-client/fuse/native.ts';

// CI builds the addon at `npm ci` (postinstall, .ci/run installs a compiler): it must be there.
const skip = !lendingAddon && process.env.CI !== 'true';

describe.skipIf(skip)('the addon’s lent-block table', () => {
  const addon = lendingAddon as NonNullable<typeof lendingAddon>;
  const mountA = Buffer.alloc(64);
  const mountB = Buffer.alloc(64);
  const block = (n: number) => Buffer.alloc(4096, n);
  const out = new Float64Array(3);

  it('is built (CI runs this with the rebuilt addon)', () => {
    expect(lendingAddon).toBeDefined();
  });

  it('holds four blocks per handle, replaces a block at the same start, and takes back one or all', () => {
    const fh = 7;
    for (let i = 0; i < 4; i++) expect(addon.lend(mountA, fh, i * 4096, block(i), false)).toBe(true);
    expect(addon.lend(mountA, fh, 4 * 4096, block(4), false)).toBe(false);
    expect(addon.lend(mountA, fh, 0, block(9), false)).toBe(true);
    addon.unlend(mountA, fh, 0);
    expect(addon.lend(mountA, fh, 4 * 4096, block(4), true)).toBe(true);
    addon.unlend(mountA, fh, -1);
    // The slot is free again: a handle that maps to it (fh + 256) may use it now.
    expect(addon.lend(mountA, fh + 256, 0, block(1), false)).toBe(true);
    addon.unlend(mountA, fh + 256, -1);
  });

  it('one slot per handle number: another handle or another mount on it is refused until it is free', () => {
    expect(addon.lend(mountA, 9, 0, block(1), false)).toBe(true);
    expect(addon.lend(mountA, 9 + 256, 0, block(2), false)).toBe(false);
    expect(addon.lend(mountB, 9, 0, block(3), false)).toBe(false);
    addon.unlend(mountB, 9, -1); // not its slot: no effect
    expect(addon.lend(mountA, 9, 4096, block(4), false)).toBe(true);
    addon.unlend(mountA, 9, -1);
    expect(addon.lend(mountB, 9, 0, block(3), false)).toBe(true);
    addon.unlend(mountB, 9, -1);
  });

  it('reports nothing served for a handle no FUSE read has touched, and for an unknown one', () => {
    expect(addon.lend(mountA, 11, 0, block(1), false)).toBe(true);
    addon.progress(mountA, 11, out);
    expect([...out]).toEqual([0, 0, 0]);
    addon.unlend(mountA, 11, -1);
    out.fill(5);
    addon.progress(mountA, 12, out);
    expect([...out]).toEqual([0, 0, 0]);
  });

  it('refuses handle 0, an empty block, and rejects a start that is not a safe non-negative integer', () => {
    expect(addon.lend(mountA, 0, 0, block(1), false)).toBe(false);
    expect(addon.lend(mountA, 13, 0, Buffer.alloc(0), false)).toBe(false);
    expect(() => addon.lend(mountA, 13, -1, block(1), false)).toThrow(/start/);
    expect(() => addon.progress(mountA, 13, new Float64Array(2))).toThrow(/Float64Array/);
  });
});
