/**
 * The thin fuse-native binding: translate each FUSE callback into one StrataFs call, copy read
 * bytes into the kernel's buffer before calling back (the buffer belongs to the native side and is
 * never kept), and turn errors into errno through errno.ts — nothing else lives here.
 *
 * Mount options (design.md §4, measured on libfuse 2.9 via fuse-native 2.2.6):
 * - `force` clears a stale mount left by a killed process; `autoUnmount` makes the kernel drop the
 *   mount within ~1 s if this process dies without unmounting.
 * - No `kernel_cache`/`auto_cache`: libfuse drops a file's pages at every open, so each open reads
 *   the version it resolved. auto_cache only compares size and mtime (ms precision here, whole
 *   seconds from S3), so a same-size overwrite within a second would be served from stale pages —
 *   or worse, a mix of old pages and new reads. Re-reads therefore run at the FUSE ceiling from the
 *   block cache, not at page-cache speed (measured in docs/benchmarks/mount.md).
 * - `ro` is passed through `fsname` because fuse-native forwards no other free-form -o options.
 */
import Fuse, { type Operations, type Stat } from 'fuse-native';
import type { Attr, StrataFs } from '../fs/strata-fs.ts';
import { isExpected, NO_ATTRIBUTE_ERRNO, toErrno, UNSUPPORTED_NAMESPACE_ERRNO } from './errno.ts';
import { Lender } from './lender.ts';
import { type LendingAddon, lendingAddon, OPEN_DIRECT_IO_BIT } from './native.ts';

/** Called once per FUSE op with its duration and errno (0 on success). */
export type OpObserver = (op: string, seconds: number, errno: number) => void;

export interface BindingOptions {
  observe?: OpObserver;
  /** Unexpected failures (EIO and friends) are reported here with their cause. */
  onError?: (op: string, path: string, err: unknown) => void;
  /** Lends in-memory blocks to the addon after JavaScript served a read (lender.ts); none = every read in JS. */
  lender?: Lender;
}

export function fuseOperations(fs: StrataFs, options: BindingOptions = {}): Operations {
  const observe = options.observe ?? (() => {});
  const onError = options.onError ?? (() => {});
  const lender = options.lender;

  /** Runs one op: time it, map failures to errno exactly once. */
  function run<T>(
    op: string,
    path: string,
    work: () => Promise<T> | T,
    done: (err: number, value?: T) => void,
  ) {
    const start = process.hrtime.bigint();
    const finish = (errno: number, value?: T) => {
      observe(op, Number(process.hrtime.bigint() - start) / 1e9, errno);
      done(errno, value);
    };
    let result: Promise<T>;
    try {
      result = Promise.resolve(work());
    } catch (err) {
      result = Promise.reject(err);
    }
    result.then(
      (value) => finish(0, value),
      (err) => {
        if (!isExpected(err)) onError(op, path, err);
        finish(toErrno(err));
      },
    );
  }

  const refuse =
    (op: string) =>
    (path: string, ...rest: unknown[]) => {
      const cb = rest[rest.length - 1] as (err: number) => void;
      run(
        op,
        path,
        () => fs.refuse(op, path),
        (err) => cb(err),
      );
    };

  return {
    init: (cb) => cb(0),
    statfs: (path, cb) =>
      run(
        'statfs',
        path,
        () => fs.statfs(),
        (err, v) => cb(err, v),
      ),
    getattr: (path, cb) => {
      // `find`/`ls -lR` issue one of these per entry: answer from the cached listing without a
      // promise when possible.
      const start = process.hrtime.bigint();
      const now = fs.getattrNow(path);
      if (now) {
        observe('getattr', Number(process.hrtime.bigint() - start) / 1e9, 0);
        return cb(0, stat(now));
      }
      run(
        'getattr',
        path,
        () => fs.getattr(path),
        (err, a) => cb(err, a && stat(a)),
      );
    },
    fgetattr: (path, fd, cb) =>
      run(
        'fgetattr',
        path,
        () => fs.fgetattr(fd),
        (err, a) => cb(err, a && stat(a)),
      ),
    readdir: (path, cb) =>
      run(
        'readdir',
        path,
        () => fs.readdir(path),
        (err, r) => (err ? cb(err) : cb(0, r?.names ?? [], r?.attrs.map(stat) ?? [])),
      ),
    open: (path, flags, cb) =>
      run(
        'open',
        path,
        () => fs.open(path, flags),
        // The patched addon reads bit 29 as "direct_io for this open" (native.ts); only set when
        // StrataFs runs with perOpenDirectIo, which mount.ts turns on only with that addon.
        (err, fh) => cb(err, fh !== undefined && fs.isDirect(fh) ? fh | OPEN_DIRECT_IO_BIT : fh),
      ),
    read: (path, fd, buf, len, pos, cb) => {
      // Warm reads complete synchronously (no promise, no closure chain): this is the hot path,
      // one call per 128 KiB kernel read — or, with a lender, per block: the addon answers the
      // block's other reads itself once it is lent (lender.ts), and sync hands those to the reader.
      const start = process.hrtime.bigint();
      lender?.sync(fd);
      let n: number | Promise<number>;
      try {
        n = fs.readInto(fd, pos, len, buf);
      } catch (err) {
        n = Promise.reject(err);
      }
      if (typeof n === 'number') {
        observe('read', Number(process.hrtime.bigint() - start) / 1e9, 0);
        lender?.offer(fd, pos);
        return cb(n);
      }
      n.then(
        (bytes) => {
          observe('read', Number(process.hrtime.bigint() - start) / 1e9, 0);
          lender?.offer(fd, pos);
          cb(bytes);
        },
        (err) => {
          if (!isExpected(err)) onError('read', path, err);
          const errno = toErrno(err);
          observe('read', Number(process.hrtime.bigint() - start) / 1e9, errno);
          cb(errno);
        },
      );
    },
    release: (path, fd, cb) => {
      // Taken back before the handle number is freed: a new open may get the same number.
      lender?.release(fd);
      run(
        'release',
        path,
        () => fs.release(fd),
        (err) => cb(err),
      );
    },
    getxattr: (path, name, _position, cb) => {
      // `ls -l` asks for ACL/SELinux attributes: answer from memory, synchronously (EOPNOTSUPP
      // for those namespaces, so ls stops asking for the rest of the device).
      const start = process.hrtime.bigint();
      const now = fs.getxattrNow(path, name);
      if (now !== undefined) {
        const errno = now === false ? UNSUPPORTED_NAMESPACE_ERRNO : now === null ? NO_ATTRIBUTE_ERRNO : 0;
        observe('getxattr', Number(process.hrtime.bigint() - start) / 1e9, errno);
        return cb(errno, now || null);
      }
      run(
        'getxattr',
        path,
        () => fs.getxattr(path, name),
        (err, v) => cb(err, v ?? null),
      );
    },
    listxattr: (path, cb) =>
      run(
        'listxattr',
        path,
        () => fs.listxattr(path),
        (err, v) => cb(err, v),
      ),
    write: (path, _fd, _buf, _len, _pos, cb) =>
      run(
        'write',
        path,
        () => fs.refuse('write', path),
        (err) => cb(err),
      ),
    create: refuse('create'),
    mkdir: refuse('mkdir'),
    mknod: refuse('mknod'),
    unlink: refuse('unlink'),
    rmdir: refuse('rmdir'),
    rename: refuse('rename'),
    link: refuse('link'),
    symlink: refuse('symlink'),
    truncate: refuse('truncate'),
    ftruncate: refuse('ftruncate'),
    chmod: refuse('chmod'),
    chown: refuse('chown'),
    utimens: refuse('utimens'),
    setxattr: refuse('setxattr'),
    removexattr: refuse('removexattr'),
  };
}

function stat(a: Attr): Stat {
  return a;
}

export interface MountFuseOptions extends BindingOptions {
  allowOther?: boolean;
  /** Extra -o options (comma-separated), forwarded through fsname. */
  extraOptions?: string[];
  /** Seconds the kernel may trust attributes and names: 1 s matches the change-poll interval. */
  attrTimeoutSeconds?: number;
  /**
   * Lend in-memory blocks to the addon so it answers most streaming reads itself (lender.ts).
   * Default: when the loaded addon can (the rebuilt one); false = every read through JavaScript.
   */
  lendBlocks?: boolean;
  /** The addon's lending functions (tests); default: the loaded addon's, if it has them. */
  lendingAddon?: LendingAddon;
}

export interface FuseMount {
  readonly mountpoint: string;
  /** Lent-block counters (undefined when not lending). */
  lending(): ReturnType<Lender['stats']> | undefined;
  unmount(): Promise<void>;
}

export async function mountFuse(
  mountpoint: string,
  fs: StrataFs,
  options: MountFuseOptions = {},
): Promise<FuseMount> {
  const addon = options.lendingAddon ?? lendingAddon;
  const lender = addon && options.lendBlocks !== false ? new Lender(addon, fs) : undefined;
  const ops = fuseOperations(fs, { ...options, ...(lender ? { lender } : {}) });
  const ttl = options.attrTimeoutSeconds ?? 1;
  const fuse = new Fuse(mountpoint, ops, {
    force: true,
    autoUnmount: true,
    allowOther: options.allowOther ?? false,
    fsname: ['strata', 'ro', ...(options.extraOptions ?? [])].join(','),
    attrTimeout: ttl,
    entryTimeout: ttl,
    // A metadata op waiting on API retries may outlast fuse-native's 15 s default: only guard
    // against a wedged handler. Reads get no fuse-native timer at all: it would be a setTimeout +
    // clearTimeout per 128 KiB read, and the data path already answers every read within its own
    // deadline (READ_DEADLINE_MS, EIO after 12 s).
    timeout: { default: 60_000, read: false },
  });
  await new Promise<void>((resolve, reject) => fuse.mount((err) => (err ? reject(err) : resolve())));
  // fuse-native's per-mount native state, set by mount(): the addon keys lent blocks by it.
  const thread = (fuse as unknown as { _thread?: unknown })._thread;
  if (lender && Buffer.isBuffer(thread)) lender.attach(thread);
  let unmounted = false;
  return {
    mountpoint: fuse.mnt,
    lending: () => lender?.stats(),
    unmount: () =>
      new Promise<void>((resolve, reject) => {
        if (unmounted) return resolve();
        fuse.unmount((err) => {
          if (err) return reject(err);
          unmounted = true;
          lender?.close();
          resolve();
        });
      }),
  };
}
