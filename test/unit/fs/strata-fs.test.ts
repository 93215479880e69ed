import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { NotFoundError, PreconditionFailedError } from '../../../functions/core/errors.ts';
import { ByDateView } from '../../../mount-client/fs/by-date-view.ts';
import {
  IsADirectoryError,
  NoSuchAttributeError,
  NotADirectoryError,
  ReadOnlyError,
  UnsupportedAttributeNamespaceError,
} from '../../../mount-client/fs/errors.ts';
import { MemoryFileData } from '../../../mount-client/fs/memory-file-data.ts';
import { StrataFs, XATTR_ETAG, XATTR_SHA256 } from '../../../mount-client/fs/strata-fs.ts';
import { MemoryIndex } from '../../../mount-client/metadata/memory-index.ts';
import { MetadataCache } from '../../../mount-client/metadata/metadata-cache.ts';

function setup(presign = false, perOpenDirectIo = false) {
  const index = new MemoryIndex();
  const data = new MemoryFileData();
  const add = (path: string, bytes: Buffer, date?: string, etag = `e-${path}`) => {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    index.put(path, { size: bytes.length, etag, sha256, ...(date ? { date } : {}) });
    data.set('bucket', `data${path}`, etag, bytes);
  };
  add('/docs/a.txt', Buffer.from('hello'), '2024-05-01');
  add('/docs/deep/b.txt', Buffer.from('0123456789'), '2024-05-02');
  add('/weird name + % # ? é 🎉.txt', Buffer.from('x'), '2024-05-01');
  const meta = new MetadataCache(index);
  const fs = new StrataFs({
    meta,
    byDate: new ByDateView(index),
    data,
    uid: 1234,
    gid: 5678,
    presign,
    perOpenDirectIo,
  });
  return { index, data, meta, fs, add };
}

describe('StrataFs', () => {
  it('reports read-only attributes owned by the mounting user', async () => {
    const { fs } = setup();
    const file = await fs.getattr('/docs/a.txt');
    const dir = await fs.getattr('/docs');
    expect(file).toMatchObject({ mode: 0o100444, uid: 1234, gid: 5678, size: 5, blocks: 1 });
    expect(dir.mode).toBe(0o040555);
    expect((await fs.getattr('/')).mode).toBe(0o040555);
  });

  it('lists a directory with attributes and hides /.by-date from the root', async () => {
    const { fs } = setup();
    const root = await fs.readdir('/');
    expect(root.names).toEqual(['docs', 'weird name + % # ? é 🎉.txt']);
    expect(root.attrs[1]?.size).toBe(1);
    await expect(fs.readdir('/docs/a.txt')).rejects.toBeInstanceOf(NotADirectoryError);
    await expect(fs.getattr('/nope')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('readInto fills the kernel buffer synchronously when the reader can (readNowInto), else via a promise', async () => {
    // Prepare: a reader that serves offsets < 5 synchronously and the rest asynchronously.
    const { fs, data } = setup();
    const bytes = Buffer.from('0123456789');
    const calls = { now: 0, read: 0 };
    const original = data.open.bind(data);
    data.open = (v) => ({
      ...original(v),
      readNowInto: (offset: number, length: number, into: Buffer) => {
        if (offset >= 5) return undefined;
        calls.now++;
        return bytes.copy(into, 0, offset, offset + length);
      },
      read: async (offset: number, length: number) => {
        calls.read++;
        return bytes.subarray(offset, offset + length);
      },
    });
    const fh = await fs.open('/docs/deep/b.txt', 0);
    const into = Buffer.alloc(4);
    // Act + Assess: a number (no promise) from the fast path, clamped to the buffer.
    expect(fs.readInto(fh, 1, 100, into)).toBe(4);
    expect(into.toString()).toBe('1234');
    const later = fs.readInto(fh, 6, 100, into);
    expect(later).toBeInstanceOf(Promise);
    expect(await later).toBe(4);
    expect(into.toString()).toBe('6789');
    expect(fs.readInto(fh, 10, 100, into)).toBe(0);
    expect(calls).toEqual({ now: 1, read: 1 });
  });

  it('reads bytes through an open handle pinned to the version, clamped at end of file', async () => {
    const { fs, data } = setup();
    const fh = await fs.open('/docs/deep/b.txt', 0);
    expect((await fs.read(fh, 2, 3)).toString()).toBe('234');
    expect((await fs.read(fh, 8, 100)).toString()).toBe('89');
    expect((await fs.read(fh, 10, 100)).length).toBe(0);
    expect(data.opened[0]).toMatchObject({ bucket: 'bucket', key: 'data/docs/deep/b.txt', size: 10 });
    await fs.release(fh);
    expect(data.counts.open).toBe(0);
  });

  it('an overwrite while open gives the old bytes or a clean precondition error, never a mix', async () => {
    const { fs, add } = setup();
    const fh = await fs.open('/docs/a.txt', 0);
    add('/docs/a.txt', Buffer.from('HELLO WORLD'), undefined, 'e-new');
    await expect(fs.read(fh, 0, 5)).rejects.toBeInstanceOf(PreconditionFailedError);
  });

  it('per-open direct_io: a handle on another version than the open page-cache ones bypasses the page cache; the kernel keeps the old size of a shrunk file until its old readers close', async () => {
    const { fs, add, meta } = setup(false, true);
    const a = await fs.open('/docs/a.txt', 0);
    const a2 = await fs.open('/docs/a.txt', 0);
    expect([fs.isDirect(a), fs.isDirect(a2)]).toEqual([false, false]);
    add('/docs/a.txt', Buffer.from('HI'), undefined, 'e-short');
    meta.invalidate('/docs/a.txt');
    const b = await fs.open('/docs/a.txt', 0);
    expect(fs.isDirect(b)).toBe(true);
    expect((await fs.read(b, 0, 100)).toString()).toBe('HI');
    // Shorter: the kernel is told the old size while old page-cache readers are open (else it cuts them short).
    expect((await fs.getattr('/docs/a.txt')).size).toBe(5);
    expect(fs.getattrNow('/docs/a.txt')?.size).toBe(5);
    await fs.release(a);
    expect((await fs.getattr('/docs/a.txt')).size).toBe(5);
    await fs.release(a2);
    expect((await fs.getattr('/docs/a.txt')).size).toBe(2);
    // No page-cache handle of another version is open any more: the next open uses the page cache.
    const c = await fs.open('/docs/a.txt', 0);
    expect(fs.isDirect(c)).toBe(false);
    await Promise.all([fs.release(b), fs.release(c)]);
  });

  it('per-open direct_io: a longer new version is told at once, and an old handle reading past its own end gets ESTALE, not padding', async () => {
    const { fs, add, meta } = setup(false, true);
    const a = await fs.open('/docs/a.txt', 0);
    expect((await fs.read(a, 0, 4096)).toString()).toBe('hello');
    add('/docs/a.txt', Buffer.from('HELLO WORLD'), undefined, 'e-long');
    meta.invalidate('/docs/a.txt');
    expect((await fs.getattr('/docs/a.txt')).size).toBe(11);
    // The kernel now believes the file is 11 bytes and asks the old handle for a whole page.
    await expect(fs.read(a, 0, 4096)).rejects.toBeInstanceOf(PreconditionFailedError);
    expect(() => fs.readInto(a, 0, 4096, Buffer.alloc(4096))).toThrow(PreconditionFailedError);
    const b = await fs.open('/docs/a.txt', 0);
    expect(fs.isDirect(b)).toBe(true);
    expect((await fs.read(b, 0, 4096)).toString()).toBe('HELLO WORLD');
    await Promise.all([fs.release(a), fs.release(b)]);
    // Without the option (the stock addon) no handle is ever direct and nothing is held back.
    const plain = setup(false, false);
    const p1 = await plain.fs.open('/docs/a.txt', 0);
    plain.add('/docs/a.txt', Buffer.from('HI'), undefined, 'e-new');
    plain.meta.invalidate('/docs/a.txt');
    expect(plain.fs.isDirect(await plain.fs.open('/docs/a.txt', 0))).toBe(false);
    expect((await plain.fs.getattr('/docs/a.txt')).size).toBe(2);
    await plain.fs.release(p1);
  });

  it('opens a listed file without another resolve once the bucket layout is known', async () => {
    const { fs, index } = setup();
    await fs.open('/docs/a.txt', 0);
    await fs.readdir('/docs/deep');
    const before = index.calls.resolve;
    const fh = await fs.open('/docs/deep/b.txt', 0);
    expect(index.calls.resolve).toBe(before);
    expect((await fs.read(fh, 0, 4)).toString()).toBe('0123');
  });

  it('presign mode resolves at every open and passes the URL to the data path', async () => {
    const { fs, data } = setup(true);
    await fs.readdir('/docs');
    await fs.open('/docs/a.txt', 0);
    expect(data.opened[0]?.url).toMatch(/^http:/);
    expect(data.opened[0]?.urlExpiresAt).toBeGreaterThan(Date.now());
  });

  it('refuses every modification with ReadOnlyError', async () => {
    const { fs } = setup();
    await expect(fs.open('/docs/a.txt', 1)).rejects.toBeInstanceOf(ReadOnlyError);
    await expect(fs.open('/docs/a.txt', 2)).rejects.toBeInstanceOf(ReadOnlyError);
    await expect(fs.open('/docs/a.txt', 0o1000)).rejects.toBeInstanceOf(ReadOnlyError);
    expect(() => fs.refuse('mkdir', '/x')).toThrow(ReadOnlyError);
    await expect(fs.open('/docs', 0)).rejects.toBeInstanceOf(IsADirectoryError);
  });

  it('exposes etag and sha256 as extended attributes', async () => {
    const { fs } = setup();
    expect(await fs.listxattr('/docs/a.txt')).toEqual([XATTR_ETAG, XATTR_SHA256]);
    expect((await fs.getxattr('/docs/a.txt', XATTR_ETAG)).toString()).toBe('e-/docs/a.txt');
    expect((await fs.getxattr('/docs/a.txt', XATTR_SHA256)).toString()).toMatch(/^[0-9a-f]{64}$/);
    await expect(fs.getxattr('/docs', XATTR_ETAG)).rejects.toBeInstanceOf(NoSuchAttributeError);
    // Other namespaces are unsupported (EOPNOTSUPP), answered without a lookup.
    await expect(fs.getxattr('/docs/a.txt', 'security.selinux')).rejects.toBeInstanceOf(
      UnsupportedAttributeNamespaceError,
    );
    expect(fs.getxattrNow('/not/looked/up', 'system.posix_acl_access')).toBe(false);
  });

  it('serves the /.by-date/ view as a mirrored tree per date that reads the real file', async () => {
    const { fs } = setup();
    expect((await fs.readdir('/.by-date')).names).toEqual(['2024-05-01', '2024-05-02']);
    expect((await fs.readdir('/.by-date/2024-05-01')).names.sort()).toEqual([
      'docs',
      'weird name + % # ? é 🎉.txt',
    ]);
    expect((await fs.readdir('/.by-date/2024-05-02/docs')).names).toEqual(['deep']);
    expect((await fs.getattr('/.by-date/2024-05-02/docs/deep/b.txt')).size).toBe(10);
    const fh = await fs.open('/.by-date/2024-05-02/docs/deep/b.txt', 0);
    expect((await fs.read(fh, 0, 10)).toString()).toBe('0123456789');
    await expect(fs.getattr('/.by-date/2024-05-02/docs/a.txt')).rejects.toBeInstanceOf(NotFoundError);
    await expect(fs.getattr('/.by-date/not-a-date')).rejects.toBeInstanceOf(NotFoundError);
    await expect(fs.getattr('/.by-date/2023-01-01')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('matches NFD names to the NFC names the index stores', async () => {
    const { fs } = setup();
    const nfd = '/weird name + % # ? é 🎉.txt'.normalize('NFD');
    expect((await fs.getattr(nfd)).size).toBe(1);
  });
});
