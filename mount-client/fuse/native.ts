/**
 * What the loaded fuse-native addon can do beyond the stock one. scripts/build-fuse-native.mjs
 * (postinstall) rebuilds it so that open can ask for `direct_io` per handle; the stock prebuilt
 * addon cannot, and then every handle of a path shares its page cache (strata-fs.ts, open()).
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** Set on a handle number in open's reply: this open is direct_io (the addon clears it again). */
export const OPEN_DIRECT_IO_BIT = 0x20000000;

/** The addon fuse-native loads (undefined if it cannot be loaded here). */
const addon: Record<string, unknown> | undefined = (() => {
  try {
    const require = createRequire(import.meta.url);
    const dir = dirname(require.resolve('fuse-native/package.json'));
    // The same loader and directory fuse-native's index.js uses, so this is the addon it runs.
    const load = createRequire(join(dir, 'index.js'))('node-gyp-build') as (
      dir: string,
    ) => Record<string, unknown>;
    return load(dir);
  } catch {
    return undefined;
  }
})();

/** Whether the addon fuse-native loads honours OPEN_DIRECT_IO_BIT. */
export const perOpenDirectIo: boolean = addon?.strata_open_flags === 1;

/**
 * Lent blocks (scripts/build-fuse-native.mjs): JavaScript lends the addon an in-memory block of an
 * open handle, and the addon's FUSE threads answer reads that fall inside it by themselves — no
 * round trip to the JavaScript thread, which is most of what a warm 128 KiB read costs (fuse/lender.ts).
 * `thread` is the mount's fuse_thread_t buffer (fuse-native's `_thread`), so two mounts in one
 * process never serve each other's handles.
 */
export interface LendingAddon {
  /** True when lent; false when the handle's slot is taken (another handle) or it has 4 blocks lent. */
  lend(thread: Buffer, fh: number, start: number, data: Buffer, eof: boolean): boolean;
  /** Takes one block back (start ≥ 0) or all of the handle's (start < 0); no FUSE thread reads it after. */
  unlend(thread: Buffer, fh: number, start: number): void;
  /** out[0]: end of the furthest read served from lent blocks; out[1], out[2]: reads and bytes since the last call. */
  progress(thread: Buffer, fh: number, out: Float64Array): void;
}

export const lendingAddon: LendingAddon | undefined =
  addon?.strata_lend_version === 1
    ? {
        lend: addon.strata_lend as LendingAddon['lend'],
        unlend: addon.strata_unlend as LendingAddon['unlend'],
        progress: addon.strata_lent_progress as LendingAddon['progress'],
      }
    : undefined;
