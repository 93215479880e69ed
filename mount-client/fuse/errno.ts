/**
 * The one place where errors become errno values (design.md §4, style.md principle 3). Everything
 * below the FUSE binding throws typed errors; the binding calls `toErrno` on whatever it caught.
 *
 * Rules: a remote precondition failure (the object changed under a pinned read) is ESTALE, so a
 * reader sees a clean error instead of mixed bytes; not-found is ENOENT; bad input is EINVAL; the
 * read-only mount answers EROFS; a refused token or an archived object is EACCES; anything
 * unexpected is EIO (both logged by the binding).
 */
import Fuse from 'fuse-native';
import {
  ForbiddenError,
  NotFoundError,
  PreconditionFailedError,
  UnauthorizedError,
  ValidationError,
} from '../../functions/core/errors.ts';
import {
  BadHandleError,
  IsADirectoryError,
  NoSuchAttributeError,
  NotADirectoryError,
  ReadOnlyError,
  UnsupportedAttributeNamespaceError,
} from '../fs/errors.ts';
import { S3ReadError } from '../object-client/errors.ts';

export function toErrno(err: unknown): number {
  if (err instanceof NotFoundError) return Fuse.ENOENT;
  if (err instanceof PreconditionFailedError) return Fuse.ESTALE;
  if (err instanceof ReadOnlyError) return Fuse.EROFS;
  if (err instanceof NotADirectoryError) return Fuse.ENOTDIR;
  if (err instanceof IsADirectoryError) return Fuse.EISDIR;
  if (err instanceof NoSuchAttributeError) return Fuse.ENODATA;
  if (err instanceof UnsupportedAttributeNamespaceError) return Fuse.EOPNOTSUPP;
  if (err instanceof BadHandleError) return Fuse.EBADF;
  if (err instanceof ValidationError) return Fuse.EINVAL;
  // The API refused the mount's token (revoked, expired, outside its prefixes' scope), or the
  // object is archived (Glacier: unreadable until restored, as Mountpoint answers it): "Permission
  // denied" names the problem where EIO hides it. Both stay logged with the fix (not isExpected).
  // Any other S3 403 stays EIO: without s3:ListBucket it also means "deleted since opened".
  if (err instanceof UnauthorizedError || err instanceof ForbiddenError) return Fuse.EACCES;
  if (err instanceof S3ReadError && err.s3Code === 'InvalidObjectState') return Fuse.EACCES;
  return Fuse.EIO;
}

/** "No such attribute", for the binding's getxattr fast path (no error object is built there). */
export const NO_ATTRIBUTE_ERRNO: number = Fuse.ENODATA;
/** A namespace the mount does not carry (`security.*`, `system.*`): see UnsupportedAttributeNamespaceError. */
export const UNSUPPORTED_NAMESPACE_ERRNO: number = Fuse.EOPNOTSUPP;

/** True for errors that are an ordinary answer (ENOENT …) rather than a fault worth logging. */
export function isExpected(err: unknown): boolean {
  return (
    err instanceof NotFoundError ||
    err instanceof ReadOnlyError ||
    err instanceof NotADirectoryError ||
    err instanceof IsADirectoryError ||
    err instanceof NoSuchAttributeError ||
    err instanceof UnsupportedAttributeNamespaceError
  );
}
