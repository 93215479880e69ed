import Fuse from 'fuse-native';
import { describe, expect, it } from 'vitest';
import {
  ForbiddenError,
  NotFoundError,
  PreconditionFailedError,
  UnauthorizedError,
  UnavailableError,
  ValidationError,
} from '../../../functions/core/errors.ts';
import { ByDateView } from '../../../mount-client/fs/by-date-view.ts';
import { ReadOnlyError } from '../../../mount-client/fs/errors.ts';
import { MemoryFileData } from '../../../mount-client/fs/memory-file-data.ts';
import { StrataFs } from '../../../mount-client/fs/strata-fs.ts';
import { fuseOperations } from '../../../mount-client/fuse/binding.ts';
import { toErrno } from '../../../mount-client/fuse/errno.ts';
import { MemoryIndex } from '../../../mount-client/metadata/memory-index.ts';
import { MetadataCache } from '../../../mount-client/metadata/metadata-cache.ts';
import { S3ReadError } from '../../../mount-client/object-client/errors.ts';

describe('toErrno', () => {
  it('maps each typed error once', () => {
    expect(toErrno(new NotFoundError('x'))).toBe(-2);
    expect(toErrno(new PreconditionFailedError('x'))).toBe(-116);
    expect(toErrno(new ValidationError('x'))).toBe(-22);
    expect(toErrno(new ReadOnlyError('write', '/x'))).toBe(-30);
    expect(toErrno(new UnavailableError('x'))).toBe(-5);
    expect(toErrno(new Error('boom'))).toBe(Fuse.EIO);
    // A refused token or an archived object is "Permission denied", not an I/O error.
    expect(toErrno(new UnauthorizedError('token revoked'))).toBe(Fuse.EACCES);
    expect(toErrno(new ForbiddenError('scope'))).toBe(Fuse.EACCES);
    const archived = new S3ReadError('s3://b/k is archived', 1, 403, { s3Code: 'InvalidObjectState' });
    expect(toErrno(archived)).toBe(Fuse.EACCES);
    // Any other 403 stays EIO: without s3:ListBucket, S3 also answers 403 for a deleted version.
    expect(toErrno(new S3ReadError('s3://b/k: HTTP 403', 1, 403, { s3Code: 'AccessDenied' }))).toBe(Fuse.EIO);
    expect(toErrno(new S3ReadError('s3://b/k: HTTP 503 after 6 attempts', 6, 503))).toBe(Fuse.EIO);
  });
});

describe('fuseOperations', () => {
  const index = new MemoryIndex();
  const data = new MemoryFileData();
  const bytes = Buffer.from('abcdefghij');
  index.put('/f.txt', { size: bytes.length, etag: 'e' });
  data.set('bucket', 'data/f.txt', 'e', bytes);
  const observed: Array<[string, number]> = [];
  const ops = fuseOperations(
    new StrataFs({ meta: new MetadataCache(index), byDate: new ByDateView(index), data, uid: 0, gid: 0 }),
    { observe: (op, _s, errno) => observed.push([op, errno]) },
  );
  const call = <T extends unknown[]>(fn: (...args: never[]) => void, ...args: unknown[]) =>
    new Promise<T>((resolve) =>
      (fn as (...a: unknown[]) => void)(...args, (...r: unknown[]) => resolve(r as T)),
    );

  it('fills the kernel buffer before calling back with the byte count', async () => {
    const [, fh] = await call<[number, number]>(ops.open!, '/f.txt', 0);
    const buf = Buffer.alloc(8);
    const [n] = await call<[number]>(ops.read!, '/f.txt', fh, buf, 8, 4);
    expect(n).toBe(6);
    expect(buf.subarray(0, n).toString()).toBe('efghij');
  });

  it('answers errors as negative errno and writes as EROFS', async () => {
    const [err] = await call<[number]>(ops.getattr!, '/missing');
    expect(err).toBe(Fuse.ENOENT);
    const [w] = await call<[number]>(ops.write!, '/f.txt', 1, Buffer.alloc(1), 1, 0);
    expect(w).toBe(Fuse.EROFS);
    const [m] = await call<[number]>(ops.mkdir!, '/d', 0o755);
    expect(m).toBe(Fuse.EROFS);
    const [u] = await call<[number]>(ops.unlink!, '/f.txt');
    expect(u).toBe(Fuse.EROFS);
    expect(observed).toContainEqual(['getattr', Fuse.ENOENT]);
  });

  it('returns readdir names with stats', async () => {
    const [err, names, stats] = await call<[number, string[], Array<{ size: number }>]>(ops.readdir!, '/');
    expect(err).toBe(0);
    expect(names).toEqual(['f.txt']);
    expect(stats[0]?.size).toBe(10);
  });

  it('answers getattr and getxattr of listed entries from memory, synchronously', async () => {
    await call(ops.readdir!, '/');
    const resolves = index.calls.resolve;
    let sync: unknown[] | undefined;
    ops.getattr!('/f.txt', (...r: unknown[]) => {
      sync = r;
    });
    expect(sync?.[0]).toBe(0);
    expect((sync?.[1] as { size: number } | undefined)?.size).toBe(10);
    sync = undefined;
    ops.getxattr!('/f.txt', 'security.selinux', 0, (...r: unknown[]) => {
      sync = r;
    });
    // Not ENODATA: EOPNOTSUPP makes `ls -l` stop asking for the rest of the device.
    expect(sync?.[0]).toBe(Fuse.EOPNOTSUPP);
    sync = undefined;
    ops.getxattr!('/f.txt', 'system.posix_acl_access', 0, (...r: unknown[]) => {
      sync = r;
    });
    expect(sync?.[0]).toBe(Fuse.EOPNOTSUPP);
    sync = undefined;
    ops.getxattr!('/f.txt', 'user.strata.nothing', 0, (...r: unknown[]) => {
      sync = r;
    });
    expect(sync?.[0]).toBe(Fuse.ENODATA);
    const [err, value] = await call<[number, Buffer]>(ops.getxattr!, '/f.txt', 'user.strata.etag', 0);
    expect(err).toBe(0);
    expect(value.length).toBeGreaterThan(0);
    expect(index.calls.resolve).toBe(resolves);
  });
});
