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

/** A read or release on a handle that was never opened or is already closed. */
export class BadHandleError extends StrataError {
  constructor(handle: number) {
    super('bad_handle', `file handle ${handle} is not open`);
  }
}
