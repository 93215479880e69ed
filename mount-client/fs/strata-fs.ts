/**
 * The read-only Strata filesystem, in plain TypeScript with no FUSE in sight (style.md principle
 * 1): paths in, attributes / names / bytes out, typed errors on failure. fuse/binding.ts adapts it
 * to fuse-native and is the only place those errors become errno values.
 *
 * - The tree is the index: getattr and readdir come from the metadata cache (metadata/), which
 *   pages /v1/list and follows /v1/changes; no S3 LIST anywhere.
 * - `/.by-date/` is a hidden view (not listed in `/`, reachable by name) — see by-date-view.ts.
 * - open() pins a handle to one object version; every read of that handle goes through the data
 *   path with that version, so an overwrite while open yields the old bytes or ESTALE, never a mix.
 * - Every modifying operation throws ReadOnlyError (EROFS).
 * - The kernel caches file pages per path (one inode per path: fuse-native is path-based). With
 *   `perOpenDirectIo`, a handle whose version differs from the page-cache handles already open on
 *   its path is opened `direct_io`, and getattr keeps answering the page-cache handles' version
 *   until they close — so neither handle reads the other's pages, and an old reader is not cut
 *   short at a newer, shorter size (docs/mount.md, "Overwrites under open handles").
 */
import { PreconditionFailedError, ValidationError } from '../../functions/core/errors.ts';
import type { ObjectVersion } from '../block-cache/types.ts';
import type { LentBlock } from '../fuse/lender.ts';
import type { MetadataCache } from '../metadata/metadata-cache.ts';
import type { Node } from '../metadata/node.ts';
import { ByDateView } from './by-date-view.ts';
import {
  BadHandleError,
  IsADirectoryError,
  NoSuchAttributeError,
  NotADirectoryError,
  ReadOnlyError,
  UnsupportedAttributeNamespaceError,
} from './errors.ts';
import type { FileData, FileReader } from './file-data.ts';

export interface Attr {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  blocks: number;
  blksize: number;
  atime: Date;
  mtime: Date;
  ctime: Date;
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

export interface StrataFsOptions {
  meta: MetadataCache;
  byDate: ByDateView;
  data: FileData;
  /** Owner reported for every inode: the mounting user unless overridden. */
  uid: number;
  gid: number;
  /** Ask the API for presigned GET URLs at open (on-prem nodes without AWS credentials). */
  presign?: boolean;
  /** Reported as st_blksize: tools size their read buffers from it. */
  ioSize?: number;
  /**
   * The FUSE binding can open a single handle `direct_io` (the patched addon, fuse/native.ts):
   * turns on the per-path version rule above. Off = every handle shares the path's page cache.
   */
  perOpenDirectIo?: boolean;
}

/** Handle numbers stay below bit 29, which the patched addon reads as "direct_io" (fuse/native.ts). */
const MAX_HANDLE = 0x1fffffff;

export const XATTR_ETAG = 'user.strata.etag';
export const XATTR_SHA256 = 'user.strata.sha256';

// 0444 files and 0555 directories: everyone may read; nobody may write (the mount is read-only).
const FILE_MODE = 0o100444;
const DIR_MODE = 0o040555;
// open(2) flags that ask for write access or modification.
const O_ACCMODE = 0o3;
const O_TRUNC = 0o1000;
const O_APPEND = 0o2000;
const O_CREAT = 0o100;

interface Handle {
  path: string;
  node: Node;
  reader: FileReader;
  /** Which object version the handle reads (bucket, key, versionId, etag). */
  version: string;
  /** Opened direct_io: its reads bypass (and never fill) the path's page cache. */
  direct: boolean;
}

export class StrataFs {
  private readonly handles = new Map<number, Handle>();
  /** Per path, the open handles that read through the kernel page cache (all on one version). */
  private readonly cached = new Map<string, Set<Handle>>();
  private nextHandle = 1;
  private readonly ioSize: number;

  constructor(private readonly o: StrataFsOptions) {
    this.ioSize = o.ioSize ?? 128 * 1024;
  }

  get openHandles(): number {
    return this.handles.size;
  }

  async getattr(path: string): Promise<Attr> {
    const p = canonical(path);
    return this.attr(this.pinnedNode(p, await this.node(p)));
  }

  /**
   * getattr from memory (a listed directory's entry, or a remembered node), for the FUSE fast
   * path; undefined when it needs the API (the binding then calls getattr). A known-absent path
   * also returns undefined, so the ENOENT is produced in one place.
   */
  getattrNow(path: string): Attr | undefined {
    const p = canonical(path);
    const node = this.nodeNow(p);
    return node ? this.attr(this.pinnedNode(p, node)) : undefined;
  }

  /**
   * What the kernel must be told of a path while page-cache handles on an older version are open.
   * A newer, *shorter* size would make the kernel end their reads there (a silently truncated
   * file), so they keep their version's attributes until they close; a direct_io reader of the new
   * version reads to its own end whatever the kernel's size says. A newer, *longer* size is told
   * at once (a reader that trusts st_size must get the whole new file); an old handle reading past
   * its own end then gets ESTALE (pastOwnEnd), never the zeros the kernel would pad a short read with.
   */
  private pinnedNode(path: string, node: Node): Node {
    const pinned = this.cached.get(path)?.values().next().value?.node;
    if (!pinned || node.type !== 'file' || node.size >= pinned.size) return node;
    return pinned;
  }

  /**
   * A page-cache handle asked past its version's end while the kernel holds a longer version's
   * size: the file was overwritten by a longer one (pinnedNode). Its bytes end here; padding the
   * page would hand the reader zeros that are in neither version.
   */
  private pastOwnEnd(h: Handle, offset: number, length: number): void {
    if (h.direct || offset + length <= h.node.size || !this.o.perOpenDirectIo) return;
    const now = this.o.meta.statNow(h.path);
    if (now && now.type === 'file' && now.size > h.node.size) {
      throw new PreconditionFailedError(
        `${h.path} was replaced by a longer version while this handle read the old one (${h.node.size} bytes); reopen it to read the new one`,
      );
    }
  }

  /** Whether a handle was opened direct_io (the binding sets it on the open reply). */
  isDirect(handle: number): boolean {
    return this.handles.get(handle)?.direct ?? false;
  }

  /**
   * getxattr from memory; `null` = the attribute does not exist; `false` = the namespace is not
   * supported (not `user.`; see UnsupportedAttributeNamespaceError); undefined = ask getxattr.
   */
  getxattrNow(path: string, name: string): Buffer | null | false | undefined {
    // Checked before any lookup: `ls -l` asks this of every file until it is told EOPNOTSUPP.
    if (!userNamespace(name)) return false;
    const node = this.nodeNow(canonical(path));
    if (!node) return undefined;
    if (name === XATTR_SHA256 && listedOnly(node)) return undefined;
    const value = name === XATTR_ETAG ? node.etag : name === XATTR_SHA256 ? node.sha256 : undefined;
    return value === undefined ? null : Buffer.from(value, 'utf8');
  }

  private nodeNow(path: string): Node | undefined {
    if (ByDateView.owns(path)) return undefined;
    return this.o.meta.statNow(path) ?? undefined;
  }

  async readdir(path: string): Promise<{ names: string[]; attrs: Attr[] }> {
    const p = canonical(path);
    const node = await this.node(p);
    if (node.type !== 'dir') throw new NotADirectoryError(p);
    const children = ByDateView.owns(p) ? await this.o.byDate.readdir(p) : await this.o.meta.readdir(p);
    const names: string[] = [];
    const attrs: Attr[] = [];
    for (const child of children) {
      names.push(child.path.slice(child.path.lastIndexOf('/') + 1));
      attrs.push(this.attr(child));
    }
    return { names, attrs };
  }

  async open(path: string, flags: number): Promise<number> {
    const p = canonical(path);
    if ((flags & O_ACCMODE) !== 0 || flags & (O_TRUNC | O_APPEND | O_CREAT))
      throw new ReadOnlyError('open', p);
    const listed = await this.node(p);
    if (listed.type === 'dir') throw new IsADirectoryError(p);
    const version = await this.version(listed);
    const node = { ...listed, size: version.size, etag: version.etag };
    const id = `${version.bucket}/${version.key}#${version.versionId ?? ''}#${version.etag}`;
    // direct_io when the page cache of this path holds another version's pages (or will, while
    // those handles read): one handle's pages must never be served to the other.
    let direct = false;
    const open = this.o.perOpenDirectIo ? this.cached.get(p) : undefined;
    for (const h of open ?? []) direct ||= h.version !== id;
    const h: Handle = { path: p, node, reader: this.o.data.open(version), version: id, direct };
    if (this.o.perOpenDirectIo && !direct) {
      if (open) open.add(h);
      else this.cached.set(p, new Set([h]));
    }
    const handle = this.allocate();
    this.handles.set(handle, h);
    return handle;
  }

  /** The next free handle number, wrapping below MAX_HANDLE (a mount may live for billions of opens). */
  private allocate(): number {
    let n = this.nextHandle;
    while (this.handles.has(n)) n = n >= MAX_HANDLE ? 1 : n + 1;
    this.nextHandle = n >= MAX_HANDLE ? 1 : n + 1;
    return n;
  }

  /** Up to `length` bytes at `offset` of an open handle; empty at or past end of file. */
  async read(handle: number, offset: number, length: number): Promise<Buffer> {
    const h = this.handles.get(handle);
    if (!h) throw new BadHandleError(handle);
    this.pastOwnEnd(h, offset, length);
    if (offset >= h.node.size || length <= 0) return Buffer.alloc(0);
    // A copy: the reader's bytes may be a pooled block, valid only in the turn they arrive.
    return h.reader.read(offset, Math.min(length, h.node.size - offset)).then((b) => Buffer.from(b));
  }

  /**
   * read() straight into the kernel's buffer: synchronous (a number) when the bytes are in memory
   * or in the disk cache, which is the warm streaming case, so the FUSE callback needs no promise;
   * a promise otherwise. Exactly one copy either way: cached block (or cache file) → `into`.
   */
  readInto(handle: number, offset: number, length: number, into: Buffer): number | Promise<number> {
    const h = this.handles.get(handle);
    if (!h) throw new BadHandleError(handle);
    this.pastOwnEnd(h, offset, length);
    if (offset >= h.node.size || length <= 0) return 0;
    const n = Math.min(length, h.node.size - offset, into.length);
    const direct = h.reader.readNowInto?.(offset, n, into);
    if (direct !== undefined) return direct;
    const now = h.reader.readNow?.(offset, n);
    if (now) return now.copy(into, 0, 0, n);
    return h.reader.read(offset, n).then((data) => data.copy(into, 0, 0, Math.min(n, data.length)));
  }

  /** The in-memory block of an open handle's version around `offset`, to lend to the FUSE addon. */
  lend(handle: number, offset: number): LentBlock | undefined {
    const h = this.handles.get(handle);
    const block = h?.reader.lend?.(offset);
    // A read running past a page-cache handle's own end must reach readInto (pastOwnEnd: ESTALE
    // once the path holds a longer version): answered short by the addon, the kernel would pad
    // the page with zeros or cut the path's size back to the old one for every reader. So the
    // addon is not told that this block ends the file; such a read costs one trip to JavaScript.
    if (block?.eof && h && !h.direct && this.o.perOpenDirectIo) block.eof = false;
    return block;
  }

  /** Reads the FUSE addon served from a handle's lent blocks (fuse/lender.ts). */
  absorb(handle: number, end: number, reads: number, bytes: number): void {
    this.handles.get(handle)?.reader.absorb?.(end, reads, bytes);
  }

  /** The size a handle was opened at (fgetattr must not change under an open file). */
  async fgetattr(handle: number): Promise<Attr> {
    const h = this.handles.get(handle);
    if (!h) throw new BadHandleError(handle);
    return this.attr(h.node);
  }

  async release(handle: number): Promise<void> {
    const h = this.handles.get(handle);
    if (!h) return;
    this.handles.delete(handle);
    const open = this.cached.get(h.path);
    if (open?.delete(h) && open.size === 0) this.cached.delete(h.path);
    await h.reader.close();
  }

  async getxattr(path: string, name: string): Promise<Buffer> {
    const p = canonical(path);
    if (!userNamespace(name)) throw new UnsupportedAttributeNamespaceError(p, name);
    const node = await this.fullNode(p, name === XATTR_SHA256);
    const value = name === XATTR_ETAG ? node.etag : name === XATTR_SHA256 ? node.sha256 : undefined;
    if (value === undefined) throw new NoSuchAttributeError(p, name);
    return Buffer.from(value, 'utf8');
  }

  async listxattr(path: string): Promise<string[]> {
    const node = await this.fullNode(canonical(path), true);
    const names: string[] = [];
    if (node.etag) names.push(XATTR_ETAG);
    if (node.sha256) names.push(XATTR_SHA256);
    return names;
  }

  /**
   * The node with everything resolve knows. Listing entries carry size/mtime/etag but not the
   * sha256, so a file known only from a listing is resolved once when its sha256 is asked for.
   */
  private async fullNode(path: string, needSha256: boolean): Promise<Node> {
    const node = await this.node(path);
    if (!needSha256 || !listedOnly(node) || ByDateView.owns(path)) return node;
    return this.o.meta.resolveFile(path, false);
  }

  statfs(): StatFs {
    // Capacity is unknowable for a bucket; report a large, empty-looking read-only volume so df
    // and tools that check free space before reading keep working.
    const blocks = 2 ** 40 / 4096;
    return {
      bsize: this.ioSize,
      frsize: 4096,
      blocks,
      bfree: 0,
      bavail: 0,
      files: 2 ** 32,
      ffree: 0,
      favail: 0,
      fsid: 0x5354524154,
      flag: 1, // ST_RDONLY
      namemax: 255,
    };
  }

  /** Every modifying operation (write, create, mkdir, unlink, rename, truncate, chmod, …). */
  refuse(op: string, path: string): never {
    throw new ReadOnlyError(op, canonical(path));
  }

  async close(): Promise<void> {
    const all = [...this.handles.keys()];
    await Promise.all(all.map((h) => this.release(h)));
  }

  private node(path: string): Promise<Node> {
    return ByDateView.owns(path) ? this.o.byDate.stat(path) : this.o.meta.stat(path);
  }

  /**
   * The version to pin a handle to. A listed file whose location is known opens without an API
   * call (the change poller keeps the listing within ~1 s of the index; a stale etag fails the
   * pinned GET cleanly); presign mode and first opens resolve fresh.
   */
  private async version(node: Node): Promise<ObjectVersion> {
    const real = node.target ?? node.path;
    const located = this.o.presign || !node.etag ? undefined : this.o.meta.locate({ ...node, path: real });
    if (located && node.etag) {
      return {
        bucket: located.bucket,
        key: located.key,
        size: node.size,
        etag: node.etag,
        ...(node.versionId ? { versionId: node.versionId } : {}),
      };
    }
    const r = await this.o.meta.resolveFile(real, this.o.presign ?? false);
    if (r.type !== 'file' || !r.bucket || !r.key || !r.etag) {
      throw new ValidationError(`${real} did not resolve to a readable file (missing bucket, key or etag)`);
    }
    return {
      bucket: r.bucket,
      key: r.key,
      size: r.size,
      etag: r.etag,
      ...(r.versionId ? { versionId: r.versionId } : {}),
      ...(r.url ? { url: r.url } : {}),
      ...(r.urlExpiresAt ? { urlExpiresAt: r.urlExpiresAt } : {}),
    };
  }

  private attr(node: Node): Attr {
    const dir = node.type === 'dir';
    const t = new Date(node.mtimeMs);
    return {
      mode: dir ? DIR_MODE : FILE_MODE,
      uid: this.o.uid,
      gid: this.o.gid,
      // Directories report the conventional 4096 and no blocks, so du(1) does not count a
      // directory's rollup on top of its files.
      size: dir ? 4096 : node.size,
      // 1 for directories means "subdirectory count unknown": find(1) then never applies its
      // leaf optimisation (nlink - 2 subdirectories), which would skip entries here.
      nlink: 1,
      blocks: dir ? 0 : Math.ceil(node.size / 512),
      blksize: this.ioSize,
      atime: t,
      mtime: t,
      ctime: t,
    };
  }
}

/** Only `user.*` attributes exist here (user.strata.etag, user.strata.sha256). */
function userNamespace(name: string): boolean {
  return name.startsWith('user.');
}

/** FUSE hands over the bytes the caller used; the index stores NFC. */
function canonical(path: string): string {
  return path.normalize('NFC');
}

/** A file known only from a directory listing (never resolved): its sha256 is not known yet. */
function listedOnly(node: Node): boolean {
  return node.type === 'file' && node.sha256 === undefined && node.key === undefined;
}
