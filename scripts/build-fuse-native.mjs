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
 * What: small edits to fuse-native's own C source (checked to be the exact text this was
 * written against, else nothing is changed), compiled with the system C compiler against the
 * libfuse headers fuse-native ships and Node's N-API headers, into fuse-native's build/Release —
 * which node-gyp-build loads before the prebuilt binary. The edits:
 * - open's reply: bit 29 of the handle number asks for `direct_io` on this open (and is cleared
 *   before the handle is stored, so every later call sees the plain number);
 * - lent blocks (mount-client/fuse/lender.ts): a table of in-memory blocks JavaScript lent per
 *   open handle, three N-API functions to lend, take back and read progress, and a first step in
 *   read's FUSE handler that answers a read wholly inside a lent block on the FUSE thread — a
 *   memcpy under a read lock — instead of waking the JavaScript thread. Why: that round trip was
 *   about half of a warm stream's CPU (docs/benchmarks/mount.md, "Session 7");
 * - exported constants `strata_open_flags` and `strata_lend_version` so the mount can tell the
 *   patched addon is loaded (mount-client/fuse/native.ts); with the stock addon it uses neither.
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
const EXPORT_PATCHED = `${EXPORT_LINE}  NAPI_EXPORT_UINT32(strata_open_flags)
  NAPI_EXPORT_UINT32(strata_lend_version)
  NAPI_EXPORT_FUNCTION(strata_lend)
  NAPI_EXPORT_FUNCTION(strata_unlend)
  NAPI_EXPORT_FUNCTION(strata_lent_progress)
`;
const CONST_LINE = 'static const uint32_t op_open = 21;\n';
const CONST_PATCHED = `${CONST_LINE}static const uint32_t strata_open_flags = 1;
static const uint32_t strata_lend_version = 1;
`;

// Lent blocks: the table and its three N-API functions go before the FUSE methods; read's call
// block (which runs on the FUSE thread) first tries the table.
const METHODS_LINE = '// Methods\n\nFUSE_METHOD(statfs,';
const READ_CALL = `FUSE_METHOD(read, 6, 2, (const char *path, char *buf, size_t len, off_t offset, struct fuse_file_info *info), {
  l->path = path;
`;
const READ_CALL_PATCHED = `FUSE_METHOD(read, 6, 2, (const char *path, char *buf, size_t len, off_t offset, struct fuse_file_info *info), {
  int strata_n = strata_lent_read(info, buf, len, offset);
  if (strata_n >= 0) return strata_n;
  l->path = path;
`;
const LEND_C = `// strata: reads served in C from blocks JavaScript lent (scripts/build-fuse-native.mjs).
//
// A sequential reader's FUSE reads (128 KiB each) mostly fall inside an 8 MiB block the mount
// already holds in memory. JavaScript lends such a block for one open handle; this table lets the
// FUSE thread copy from it and reply without a round trip to the JavaScript thread. A read that is
// not wholly inside a lent block goes to JavaScript as before. The lender keeps each lent Buffer
// alive (and out of its pool) until it takes the block back, and taking back waits for the write
// lock, so no FUSE thread can still be copying from it.
#define STRATA_LEND_SLOTS 256
#define STRATA_LEND_BLOCKS 4

typedef struct {
  const char *data;
  uint64_t start;
  uint64_t len;
  int eof;
} strata_lent_t;

typedef struct {
  const void *mount;
  uint32_t fh;
  uint64_t served_end;
  uint64_t served_reads;
  uint64_t served_bytes;
  strata_lent_t blocks[STRATA_LEND_BLOCKS];
} strata_slot_t;

static strata_slot_t strata_slots[STRATA_LEND_SLOTS];
static pthread_rwlock_t strata_lend_lock = PTHREAD_RWLOCK_INITIALIZER;

static int strata_lent_read (const struct fuse_file_info *info, char *buf, size_t len, off_t offset) {
  if (info == NULL || info->fh == 0 || offset < 0) return -1;
  const void *mount = fuse_get_context()->private_data;
  uint64_t off = (uint64_t) offset;
  int n = -1;
  pthread_rwlock_rdlock(&strata_lend_lock);
  strata_slot_t *s = &strata_slots[info->fh % STRATA_LEND_SLOTS];
  if (s->fh == info->fh && s->mount == mount) {
    for (int i = 0; i < STRATA_LEND_BLOCKS; i++) {
      strata_lent_t *b = &s->blocks[i];
      if (b->data == NULL || off < b->start || off >= b->start + b->len) continue;
      uint64_t avail = b->start + b->len - off;
      if (avail < len && !b->eof) break;
      size_t m = avail < len ? (size_t) avail : len;
      memcpy(buf, b->data + (off - b->start), m);
      n = (int) m;
      uint64_t end = off + m;
      uint64_t prev = __atomic_load_n(&s->served_end, __ATOMIC_RELAXED);
      while (end > prev && !__atomic_compare_exchange_n(&s->served_end, &prev, end, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
      __atomic_fetch_add(&s->served_reads, 1, __ATOMIC_RELAXED);
      __atomic_fetch_add(&s->served_bytes, (uint64_t) m, __ATOMIC_RELAXED);
      break;
    }
  }
  pthread_rwlock_unlock(&strata_lend_lock);
  return n;
}

static int strata_arg_double (napi_env env, napi_value v, double *out) {
  return napi_get_value_double(env, v, out) == napi_ok && *out >= 0 && *out < 9007199254740992.0;
}

// strata_lend(thread, fh, start, block, eof) → true when lent (false: slot taken by another
// handle, or this handle already has STRATA_LEND_BLOCKS blocks lent).
NAPI_METHOD(strata_lend) {
  NAPI_ARGV(5)
  NAPI_ARGV_BUFFER(thread, 0)
  NAPI_ARGV_UINT32(fh, 1)
  double start;
  if (!strata_arg_double(env, argv[2], &start)) {
    napi_throw_error(env, "EINVAL", "strata_lend: start must be a non-negative safe integer");
    return NULL;
  }
  NAPI_ARGV_BUFFER(data, 3)
  bool eof = false;
  napi_get_value_bool(env, argv[4], &eof);
  bool ok = false;
  if (fh != 0 && data_len > 0) {
    pthread_rwlock_wrlock(&strata_lend_lock);
    strata_slot_t *s = &strata_slots[fh % STRATA_LEND_SLOTS];
    if (s->fh == 0) {
      memset(s, 0, sizeof(*s));
      s->fh = fh;
      s->mount = thread;
    }
    if (s->fh == fh && s->mount == thread) {
      strata_lent_t *free_entry = NULL;
      for (int i = 0; i < STRATA_LEND_BLOCKS; i++) {
        strata_lent_t *b = &s->blocks[i];
        if (b->data != NULL && b->start == (uint64_t) start) { free_entry = b; break; }
        if (b->data == NULL && free_entry == NULL) free_entry = b;
      }
      if (free_entry != NULL) {
        free_entry->data = data;
        free_entry->start = (uint64_t) start;
        free_entry->len = data_len;
        free_entry->eof = eof;
        ok = true;
      }
    }
    pthread_rwlock_unlock(&strata_lend_lock);
  }
  napi_value result;
  napi_get_boolean(env, ok, &result);
  return result;
}

// strata_unlend(thread, fh, start): takes one block back; start < 0 takes back all of fh's blocks
// and frees its slot. When this returns no FUSE thread is reading the block(s).
NAPI_METHOD(strata_unlend) {
  NAPI_ARGV(3)
  NAPI_ARGV_BUFFER(thread, 0)
  NAPI_ARGV_UINT32(fh, 1)
  double start;
  NAPI_STATUS_THROWS(napi_get_value_double(env, argv[2], &start))
  pthread_rwlock_wrlock(&strata_lend_lock);
  strata_slot_t *s = &strata_slots[fh % STRATA_LEND_SLOTS];
  if (fh != 0 && s->fh == fh && s->mount == thread) {
    if (start < 0) {
      memset(s, 0, sizeof(*s));
    } else {
      for (int i = 0; i < STRATA_LEND_BLOCKS; i++) {
        if (s->blocks[i].data != NULL && s->blocks[i].start == (uint64_t) start) {
          memset(&s->blocks[i], 0, sizeof(s->blocks[i]));
        }
      }
    }
  }
  pthread_rwlock_unlock(&strata_lend_lock);
  return NULL;
}

// strata_lent_progress(thread, fh, out: Float64Array(3)): the end of the furthest read served from
// lent blocks, and the reads and bytes served since the last call (which resets those two).
NAPI_METHOD(strata_lent_progress) {
  NAPI_ARGV(3)
  NAPI_ARGV_BUFFER(thread, 0)
  NAPI_ARGV_UINT32(fh, 1)
  napi_typedarray_type type;
  size_t length;
  void *out;
  NAPI_STATUS_THROWS(napi_get_typedarray_info(env, argv[2], &type, &length, &out, NULL, NULL))
  if (type != napi_float64_array || length < 3) {
    napi_throw_error(env, "EINVAL", "strata_lent_progress: out must be a Float64Array of 3");
    return NULL;
  }
  double *o = (double *) out;
  o[0] = 0; o[1] = 0; o[2] = 0;
  pthread_rwlock_rdlock(&strata_lend_lock);
  strata_slot_t *s = &strata_slots[fh % STRATA_LEND_SLOTS];
  if (fh != 0 && s->fh == fh && s->mount == thread) {
    o[0] = (double) __atomic_load_n(&s->served_end, __ATOMIC_RELAXED);
    o[1] = (double) __atomic_exchange_n(&s->served_reads, 0, __ATOMIC_RELAXED);
    o[2] = (double) __atomic_exchange_n(&s->served_bytes, 0, __ATOMIC_RELAXED);
  }
  pthread_rwlock_unlock(&strata_lend_lock);
  return NULL;
}

`;

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
  if (
    ![OPEN_SIGNAL, EXPORT_LINE, CONST_LINE, METHODS_LINE, READ_CALL].every(
      (s) => source.split(s).length === 2,
    )
  ) {
    return say('fuse-native.c is not the text this patch expects; kept the stock addon');
  }
  const patched = source
    .replace(OPEN_SIGNAL, OPEN_SIGNAL_PATCHED)
    .replace(EXPORT_LINE, EXPORT_PATCHED)
    .replace(CONST_LINE, CONST_PATCHED)
    .replace(METHODS_LINE, `${LEND_C}${METHODS_LINE}`)
    .replace(READ_CALL, READ_CALL_PATCHED);

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
