/**
 * What the loaded fuse-native addon can do beyond the stock one. scripts/build-fuse-native.mjs
 * (postinstall) rebuilds it so that open can ask for `direct_io` per handle; the stock prebuilt
 * addon cannot, and then every handle of a path shares its page cache (strata-fs.ts, open()).
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** Set on a handle number in open's reply: this open is direct_io (the addon clears it again). */
export const OPEN_DIRECT_IO_BIT = 0x20000000;

/** Whether the addon fuse-native loads honours OPEN_DIRECT_IO_BIT. */
export const perOpenDirectIo: boolean = (() => {
  try {
    const require = createRequire(import.meta.url);
    const dir = dirname(require.resolve('fuse-native/package.json'));
    // The same loader and directory fuse-native's index.js uses, so this is the addon it runs.
    const load = createRequire(join(dir, 'index.js'))('node-gyp-build') as (
      dir: string,
    ) => Record<string, unknown>;
    return load(dir).strata_open_flags === 1;
  } catch {
    return false;
  }
})();
