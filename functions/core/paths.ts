/**
 * Strata paths and the S3 keys derived from them (design.md §5, a contract).
 *
 * A path is absolute, `/`-separated, Unicode NFC, without `.`/`..`/empty segments or control
 * characters, and its S3 key (data prefix + path without the leading `/`) is at most 1024 bytes of
 * UTF-8. Clients never choose raw keys: the key is always derived here, server-side. The first
 * segment `.by-date` is reserved for the mount client's date view.
 */
import { ValidationError } from './errors.ts';

/** S3's hard limit on key length, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 1024;
export const RESERVED_ROOTS = new Set(['.by-date']);

// C0 controls, DEL and C1 controls. They break terminals, logs and some S3 tooling.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;

export interface PathOptions {
  /** Data prefix the key lives under (e.g. `data/`); counted against the 1024-byte key limit. */
  dataPrefix?: string;
  /** Accept the root `/` and a trailing `/` (directory arguments such as `list?path=`). */
  directory?: boolean;
}

/**
 * Validates and normalizes a user-supplied path. Returns the canonical form (NFC, leading `/`,
 * no trailing `/` except for the root). Throws ValidationError naming the exact problem.
 */
export function normalizePath(input: unknown, options: PathOptions = {}): string {
  if (typeof input !== 'string' || input.length === 0) {
    throw new ValidationError('path is required: give an absolute path such as /datasets/a.csv', {
      code: 'invalid_path',
    });
  }
  if (CONTROL.test(input)) {
    throw new ValidationError('path contains a control character (NUL, newline, tab, …); remove it', {
      code: 'invalid_path',
    });
  }
  if (!input.isWellFormed()) {
    // A lone surrogate has no UTF-8 encoding: two different strings would map to one S3 key.
    throw new ValidationError('path is not well-formed Unicode (a lone surrogate); fix the encoding', {
      code: 'invalid_path',
    });
  }
  if (!input.startsWith('/')) {
    throw new ValidationError(`path must be absolute (start with "/"): ${JSON.stringify(input)}`, {
      code: 'invalid_path',
    });
  }
  let path = input.normalize('NFC');
  if (options.directory) {
    if (path === '/') return '/';
    if (path.endsWith('/')) path = path.slice(0, -1);
  } else if (path === '/' || path.endsWith('/')) {
    throw new ValidationError(`path names a directory, not a file: ${JSON.stringify(input)}`, {
      code: 'invalid_path',
    });
  }
  const segments = path.slice(1).split('/');
  for (const segment of segments) {
    if (segment === '') {
      throw new ValidationError(`path has an empty segment ("//"): ${JSON.stringify(input)}`, {
        code: 'invalid_path',
      });
    }
    if (segment === '.' || segment === '..') {
      throw new ValidationError(`path may not contain "." or ".." segments: ${JSON.stringify(input)}`, {
        code: 'invalid_path',
      });
    }
  }
  if (RESERVED_ROOTS.has(segments[0] ?? '')) {
    throw new ValidationError(
      `/${segments[0]}/ is reserved for the mount client's views; choose another name`,
      {
        code: 'invalid_path',
      },
    );
  }
  const keyBytes = Buffer.byteLength(options.dataPrefix ?? '', 'utf8') + Buffer.byteLength(path, 'utf8') - 1;
  if (keyBytes > MAX_KEY_BYTES) {
    throw new ValidationError(
      `path is too long: its S3 key would be ${keyBytes} bytes of UTF-8, the limit is ${MAX_KEY_BYTES}`,
      { code: 'invalid_path' },
    );
  }
  return path;
}

/** Normalizes a data prefix to `''` or `something/` (no leading slash). */
export function normalizePrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+/, '');
  if (trimmed === '') return '';
  return trimmed.endsWith('/') ? trimmed : `${trimmed}/`;
}

/** S3 key of a normalized path. The only place keys are derived from paths. */
export function keyForPath(dataPrefix: string, path: string): string {
  return `${normalizePrefix(dataPrefix)}${path.slice(1)}`;
}

/**
 * Path of an S3 key, or undefined when the key lies outside the data prefix or could never have
 * been produced by keyForPath (such keys are ignored by the indexer and counted).
 */
export function pathForKey(dataPrefix: string, key: string): string | undefined {
  const prefix = normalizePrefix(dataPrefix);
  if (!key.startsWith(prefix)) return undefined;
  const rest = key.slice(prefix.length);
  if (rest === '' || rest.endsWith('/')) return undefined;
  try {
    const path = normalizePath(`/${rest}`, { dataPrefix: prefix });
    // A key whose path is not already canonical (e.g. NFD) would alias another path.
    return path === `/${rest}` ? path : undefined;
  } catch {
    return undefined;
  }
}

/** Parent directory of a normalized path (`/` for top-level entries). */
export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/** Last segment of a normalized path (`''` for the root). */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** Every ancestor directory of a path, nearest first, ending with `/`. */
export function ancestorsOf(path: string): string[] {
  const out: string[] = [];
  let p = path;
  while (p !== '/') {
    p = parentOf(p);
    out.push(p);
  }
  return out;
}

/** Joins a normalized directory and a single name. */
export function joinPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/** True when `path` equals `prefix` or lies beneath it (prefix given as a directory path). */
export function isWithin(path: string, prefix: string): boolean {
  const dir = prefix.endsWith('/') && prefix !== '/' ? prefix.slice(0, -1) : prefix;
  if (dir === '/') return true;
  return path === dir || path.startsWith(`${dir}/`);
}
