#!/usr/bin/env node
/**
 * Builds fuse-native's addon with per-open page-cache control, at `npm install` (postinstall).
 *
 * Why: fuse-native 2.2.6 copies only the handle number from JavaScript's open() back into libfuse's
 * fuse_file_info, so every file shares the kernel page cache of its path's inode. When a file is
 * overwritten in S3 while a handle on the old version is still reading, the two versions' pages mix
 * between handles (docs/mount.md, "Overwrites under open handles"). The fix is what FUSE offers per
 * open: `direct_io` for a handle whose version differs from the pages already cached for the path.
 *
 * What: two small edits to fuse-native's own C source (checked to be the exact text this was
 * written against, else nothing is changed), compiled with the system C compiler against the
 * libfuse headers fuse-native ships and Node's N-API headers, into fuse-native's build/Release —
 * which node-gyp-build loads before the prebuilt binary. The edits:
 * - open's reply: bit 29 of the handle number asks for `direct_io` on this open (and is cleared
 *   before the handle is stored, so every later call sees the plain number);
 * - an exported constant `strata_open_flags` so the mount can tell the patched addon is loaded
 *   (mount-client/fuse/native.ts); with the stock addon it never sets the bit.
 *
 * Never fails the install: without a compiler or headers it says so and the stock addon stays, and
 * the mount then falls back to the old behaviour (logged once at mount).
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

function say(line) {
  console.log(`strata: fuse-native per-open page cache: ${line}`);
}

// The tail of open's FUSE_METHOD (opendir and create have the same lines, so the anchor includes
// the start of the method that follows it).
const OPEN_SIGNAL = `  NAPI_ARGV_INT32(fd, 2)
  if (fd != 0) {
    l->info->fh = fd;
  }
})

FUSE_METHOD(opendir,`;
const OPEN_SIGNAL_PATCHED = `  NAPI_ARGV_INT32(fd, 2)
  /* strata: bit 29 of the handle asks for direct_io on this open (scripts/build-fuse-native.mjs). */
  if (fd & 0x20000000) {
    l->info->direct_io = 1;
    fd &= ~0x20000000;
  }
  if (fd != 0) {
    l->info->fh = fd;
  }
})

FUSE_METHOD(opendir,`;
const EXPORT_LINE = '  NAPI_EXPORT_UINT32(op_open)\n';
const EXPORT_PATCHED = `${EXPORT_LINE}  NAPI_EXPORT_UINT32(strata_open_flags)\n`;
const CONST_LINE = 'static const uint32_t op_open = 21;\n';
const CONST_PATCHED = `${CONST_LINE}static const uint32_t strata_open_flags = 1;\n`;

function main() {
  let pkgDir;
  let headers;
  try {
    pkgDir = dirname(require.resolve('fuse-native/package.json'));
  } catch {
    return say('fuse-native is not installed; nothing to do');
  }
  const version = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')).version;
  if (version !== '2.2.6')
    return say(`written for fuse-native 2.2.6, found ${version}; kept the stock addon`);
  const source = readFileSync(join(pkgDir, 'fuse-native.c'), 'utf8');
  if (![OPEN_SIGNAL, EXPORT_LINE, CONST_LINE].every((s) => source.split(s).length === 2)) {
    return say('fuse-native.c is not the text this patch expects; kept the stock addon');
  }
  const patched = source
    .replace(OPEN_SIGNAL, OPEN_SIGNAL_PATCHED)
    .replace(EXPORT_LINE, EXPORT_PATCHED)
    .replace(CONST_LINE, CONST_PATCHED);

  const { lib: fuseLib, include: fuseInclude } = require(
    require.resolve('fuse-shared-library', { paths: [pkgDir] }),
  );
  const napiMacros = dirname(require.resolve('napi-macros/napi-macros.h', { paths: [pkgDir] }));
  // Node's headers (N-API and libuv): the pinned node@22 package ships them; else the system's.
  const candidates = [
    join(
      dirname(require.resolve('node/package.json')),
      'node_modules',
      `node-${process.platform}-${process.arch}`,
      'include',
      'node',
    ),
    '/usr/include/node',
  ];
  headers = candidates.find((dir) => existsSync(join(dir, 'node_api.h')) && existsSync(join(dir, 'uv.h')));
  if (!headers) return say(`no Node headers (looked in ${candidates.join(', ')}); kept the stock addon`);

  const out = join(pkgDir, 'build', 'Release');
  const work = join(pkgDir, 'build', 'strata');
  mkdirSync(out, { recursive: true });
  mkdirSync(work, { recursive: true });
  writeFileSync(join(work, 'fuse-native.c'), patched);
  copyFileSync(join(pkgDir, 'semaphore.h'), join(work, 'semaphore.h'));
  const target = join(out, 'fuse.node');
  try {
    execFileSync(
      process.env.CC || 'cc',
      [
        '-shared',
        '-fPIC',
        '-O3',
        '-Wall',
        '-D_FILE_OFFSET_BITS=64',
        `-I${headers}`,
        `-I${napiMacros}`,
        `-I${fuseInclude}`,
        join(work, 'fuse-native.c'),
        // Linked like the prebuilt addon: against libfuse.so.2, found at run time from libfuse2.
        `-L${dirname(fuseLib)}`,
        '-lfuse',
        '-o',
        target,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
  } catch (err) {
    rmSync(target, { force: true });
    const detail = String(err.stderr || err.message)
      .split('\n')
      .slice(0, 3)
      .join(' ');
    return say(
      `could not compile (${detail}); kept the stock addon — install a C compiler (apt-get install gcc) and run npm rebuild`,
    );
  }
  say(`built ${target}`);
}

main();
