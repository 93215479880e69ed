/**
 * Type declarations for fuse-native@2.2.6 (it ships none). Only the surface Strata uses is typed
 * precisely; see node_modules/fuse-native/index.js for the source of truth.
 *
 * Callback conventions: `cb(errno)` with 0 for success or a negative errno (`Fuse.ENOENT` …);
 * `read` calls back with the number of bytes it copied into `buf`, which belongs to the native
 * side and must be filled before the callback and never kept afterwards.
 */
declare module 'fuse-native' {
  export interface Stat {
    mode: number;
    uid: number;
    gid: number;
    size: number;
    nlink?: number;
    ino?: number;
    dev?: number;
    rdev?: number;
    blksize?: number;
    blocks?: number;
    atime: Date | number;
    mtime: Date | number;
    ctime: Date | number;
  }

  export interface StatFs {
    bsize: number;
    frsize: number;
    blocks: number;
    bfree: number;
    bavail: number;
    files: number;
    ffree: number;
    favail: number;
    fsid: number;
    flag: number;
    namemax: number;
  }

  type Cb = (err: number) => void;

  export interface Operations {
    init?(cb: Cb): void;
    statfs?(path: string, cb: (err: number, stat?: StatFs) => void): void;
    getattr?(path: string, cb: (err: number, stat?: Stat) => void): void;
    fgetattr?(path: string, fd: number, cb: (err: number, stat?: Stat) => void): void;
    access?(path: string, mode: number, cb: Cb): void;
    open?(path: string, flags: number, cb: (err: number, fd?: number) => void): void;
    opendir?(path: string, flags: number, cb: (err: number, fd?: number) => void): void;
    release?(path: string, fd: number, cb: Cb): void;
    releasedir?(path: string, fd: number, cb: Cb): void;
    read?(
      path: string,
      fd: number,
      buf: Buffer,
      len: number,
      pos: number,
      cb: (bytesReadOrErr: number) => void,
    ): void;
    write?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void): void;
    readdir?(path: string, cb: (err: number, names?: string[], stats?: Stat[]) => void): void;
    getxattr?(
      path: string,
      name: string,
      position: number,
      cb: (err: number, value?: Buffer | null) => void,
    ): void;
    listxattr?(path: string, cb: (err: number, list?: string[]) => void): void;
    setxattr?(path: string, name: string, value: Buffer, position: number, flags: number, cb: Cb): void;
    removexattr?(path: string, name: string, cb: Cb): void;
    create?(path: string, mode: number, cb: (err: number, fd?: number) => void): void;
    utimens?(path: string, atime: number, mtime: number, cb: Cb): void;
    truncate?(path: string, size: number, cb: Cb): void;
    ftruncate?(path: string, fd: number, size: number, cb: Cb): void;
    chown?(path: string, uid: number, gid: number, cb: Cb): void;
    chmod?(path: string, mode: number, cb: Cb): void;
    mknod?(path: string, mode: number, dev: number, cb: Cb): void;
    unlink?(path: string, cb: Cb): void;
    rename?(src: string, dest: string, cb: Cb): void;
    link?(src: string, dest: string, cb: Cb): void;
    symlink?(src: string, dest: string, cb: Cb): void;
    mkdir?(path: string, mode: number, cb: Cb): void;
    rmdir?(path: string, cb: Cb): void;
    flush?(path: string, fd: number, cb: Cb): void;
    fsync?(path: string, datasync: boolean, fd: number, cb: Cb): void;
    readlink?(path: string, cb: (err: number, link?: string) => void): void;
  }

  export interface FuseOptions {
    /** Per-op timeout in ms (default 15 000), `false` to disable, or per-op overrides. */
    timeout?: number | false | Record<string, number | false>;
    force?: boolean;
    mkdir?: boolean;
    debug?: boolean;
    allowOther?: boolean;
    allowRoot?: boolean;
    autoUnmount?: boolean;
    defaultPermissions?: boolean;
    maxRead?: number;
    fsname?: string;
    subtype?: string;
    kernelCache?: boolean;
    autoCache?: boolean;
    umask?: number;
    uid?: number;
    gid?: number;
    entryTimeout?: number;
    attrTimeout?: number;
    acAttrTimeout?: number;
    noforget?: boolean;
  }

  export default class Fuse {
    constructor(mnt: string, ops: Operations, opts?: FuseOptions);
    readonly mnt: string;
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    static unmount(mnt: string, cb: (err: Error | null) => void): void;
    static EPERM: number;
    static ENOENT: number;
    static EIO: number;
    static EBADF: number;
    static EACCES: number;
    static EEXIST: number;
    static ENOTDIR: number;
    static EISDIR: number;
    static EINVAL: number;
    static EROFS: number;
    static ENOSYS: number;
    static ESTALE: number;
    static ENODATA: number;
    static EOPNOTSUPP: number;
    static ERANGE: number;
    static EAGAIN: number;
    static ENAMETOOLONG: number;
  }
}
