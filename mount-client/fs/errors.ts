/**
 * Filesystem-level errors of the mount client. They extend the core's StrataError so the single
 * errno map (fuse/errno.ts) can treat every error the same way: by class, never by message.
 */
import { StrataError } from '../../functions/core/errors.ts';

/** Any modifying operation: the mount is a read-only view of the index. */
export class ReadOnlyError extends StrataError {
  constructor(op: string, path: string) {
    super('read_only', `${op} ${path}: Strata mounts are read-only; upload with \`strata upload\` instead`);
  }
}

export class NotADirectoryError extends StrataError {
  constructor(path: string) {
    super('not_a_directory', `${path} is a file, not a directory`);
  }
}

export class IsADirectoryError extends StrataError {
  constructor(path: string) {
    super('is_a_directory', `${path} is a directory; open files only`);
  }
}

/** getxattr of a name the file does not carry (e.g. sha256 of an object uploaded without one). */
export class NoSuchAttributeError extends StrataError {
  constructor(path: string, name: string) {
    super('no_such_attribute', `${path} has no extended attribute ${name}`);
  }
}

/**
 * getxattr/listxattr of a namespace other than `user.` (`security.*`, `system.posix_acl_*`,
 * `trusted.*`): Strata has no labels or ACLs to report. Mapped to EOPNOTSUPP, not ENODATA, on
 * purpose: `ls -l` (coreutils) remembers an EOPNOTSUPP per device and stops asking, where
 * ENODATA costs it two FUSE round trips per file (measured: 206 → 4 getxattr calls for two
 * `ls -l` of 50 files). The kernel makes only ENOSYS sticky (it would then refuse every
 * getxattr on the mount, `user.strata.*` included), so EOPNOTSUPP leaves `user.` working.
 */
export class UnsupportedAttributeNamespaceError extends StrataError {
  constructor(path: string, name: string) {
    super(
      'xattr_namespace_unsupported',
      `${path}: extended attribute ${name} is not supported; Strata exposes only user.strata.etag and user.strata.sha256`,
    );
  }
}

/** A read or release on a handle that was never opened or is already closed. */
export class BadHandleError extends StrataError {
  constructor(handle: number) {
    super('bad_handle', `file handle ${handle} is not open`);
  }
}
