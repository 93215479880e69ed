/**
 * An in-memory index implementing the IndexApi port: files you `put`/`remove` appear through
 * resolve/list/by-date/changes exactly as the HTTP API describes them (api-types.ts), with keyset
 * pagination and an append-only change journal. Used by unit tests and the FUSE ceiling bench;
 * it counts calls so tests can assert how many API round trips an operation cost.
 */
import type {
  ByDateResponse,
  Change,
  ChangesResponse,
  DatesResponse,
  Entry,
  ListResponse,
  ResolveResponse,
} from '../../functions/core/api-types.ts';
import { NotFoundError } from '../../functions/core/errors.ts';
import { ancestorsOf, baseName, keyForPath } from '../../functions/core/paths.ts';
import type { IndexApi } from './index-api.ts';

export interface MemoryFile {
  size: number;
  etag: string;
  versionId?: string;
  sha256?: string;
  mtime?: string;
  /** yyyy-mm-dd for the by-date view (default: the mtime's date). */
  date?: string;
}

export interface MemoryIndexOptions {
  bucket?: string;
  dataPrefix?: string;
  /** Page size when the caller gives no limit. */
  pageSize?: number;
  /** Whether resolve answers for directories (type 'dir'); false mimics a files-only resolver. */
  resolvesDirectories?: boolean;
}

type Call = 'resolve' | 'list' | 'dates' | 'byDate' | 'changes';

export class MemoryIndex implements IndexApi {
  readonly files = new Map<string, MemoryFile>();
  readonly calls: Record<Call, number> = { resolve: 0, list: 0, dates: 0, byDate: 0, changes: 0 };
  private readonly journal: Change[] = [];
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly pageSize: number;
  private readonly resolvesDirectories: boolean;

  constructor(options: MemoryIndexOptions = {}) {
    this.bucket = options.bucket ?? 'bucket';
    this.prefix = options.dataPrefix ?? 'data/';
    this.pageSize = options.pageSize ?? 1000;
    this.resolvesDirectories = options.resolvesDirectories ?? true;
  }

  put(path: string, file: MemoryFile): void {
    const full = { mtime: '2024-05-01T12:00:00.000Z', ...file };
    this.files.set(path, full);
    this.journal.push({
      seq: this.journal.length + 1,
      op: 'put',
      path,
      etag: file.etag,
      size: file.size,
      at: full.mtime,
    });
  }

  remove(path: string): void {
    this.files.delete(path);
    this.journal.push({ seq: this.journal.length + 1, op: 'delete', path, at: new Date().toISOString() });
  }

  resetCalls(): void {
    for (const k of Object.keys(this.calls) as Call[]) this.calls[k] = 0;
  }

  async resolve(path: string, options?: { presign?: boolean }): Promise<ResolveResponse> {
    this.calls.resolve++;
    const file = this.files.get(path);
    if (file) {
      const key = keyForPath(this.prefix, path);
      return {
        ...this.fileEntry(path, file),
        bucket: this.bucket,
        key,
        state: 'active',
        date: dateOf(file),
        ...(this.dirEntry(path) ? { alsoDirectory: true as const } : {}),
        ...(options?.presign
          ? { url: `http://s3.invalid/${this.bucket}/${key}?signed`, urlExpiresAt: '2099-01-01T00:00:00Z' }
          : {}),
      };
    }
    const dir = this.resolvesDirectories ? this.dirEntry(path) : undefined;
    if (dir) return { ...dir, bucket: this.bucket, key: '', state: 'active' };
    throw new NotFoundError(`no file or directory at ${path}`);
  }

  async list(path: string, cursor?: string, limit?: number): Promise<ListResponse> {
    this.calls.list++;
    const children = new Map<string, Entry>();
    let isFile = false;
    for (const [p, f] of this.files) {
      if (p === path) isFile = true; // and maybe a directory too (keys under it): listed then
      if (path !== '/' && !p.startsWith(`${path}/`)) continue;
      const rest = p.slice(path === '/' ? 1 : path.length + 1);
      const slash = rest.indexOf('/');
      const name = slash < 0 ? rest : rest.slice(0, slash);
      const child = path === '/' ? `/${name}` : `${path}/${name}`;
      if (!children.has(name)) {
        children.set(name, slash < 0 ? this.fileEntry(p, f) : (this.dirEntry(child) as Entry));
      }
    }
    if (children.size === 0 && isFile) throw new NotFoundError(`${path} is a file`);
    if (children.size === 0 && path !== '/') throw new NotFoundError(`no directory at ${path}`);
    return page(path, [...children.values()], cursor, limit ?? this.pageSize);
  }

  async dates(): Promise<DatesResponse> {
    this.calls.dates++;
    const by = new Map<string, { files: number; bytes: number }>();
    for (const f of this.files.values()) {
      const d = by.get(dateOf(f)) ?? { files: 0, bytes: 0 };
      d.files++;
      d.bytes += f.size;
      by.set(dateOf(f), d);
    }
    return { dates: [...by].sort().map(([date, v]) => ({ date, ...v })) };
  }

  async byDate(date: string, cursor?: string): Promise<ByDateResponse> {
    this.calls.byDate++;
    const entries = [...this.files]
      .filter(([, f]) => dateOf(f) === date)
      .map(([p, f]) => this.fileEntry(p, f))
      .sort((a, b) => compare(a.path, b.path));
    const start = cursor ? entries.findIndex((e) => compare(e.path, cursor) > 0) : 0;
    const slice = start < 0 ? [] : entries.slice(start, start + this.pageSize);
    const last = slice.at(-1);
    return {
      date,
      entries: slice,
      ...(last && start + slice.length < entries.length ? { nextCursor: last.path } : {}),
    };
  }

  async changes(since: number, limit = 1000): Promise<ChangesResponse> {
    this.calls.changes++;
    const changes = this.journal.filter((c) => c.seq > since).slice(0, limit);
    return { changes, nextSince: changes.at(-1)?.seq ?? since, latest: this.journal.length };
  }

  private fileEntry(path: string, f: MemoryFile): Entry {
    return {
      path,
      name: baseName(path),
      type: 'file',
      size: f.size,
      mtime: f.mtime ?? '2024-05-01T12:00:00.000Z',
      etag: f.etag,
      ...(f.versionId ? { versionId: f.versionId } : {}),
      ...(f.sha256 ? { sha256: f.sha256 } : {}),
    };
  }

  private dirEntry(path: string): Entry | undefined {
    let files = 0;
    let size = 0;
    for (const [p, f] of this.files) {
      if (path === '/' || ancestorsOf(p).includes(path)) {
        files++;
        size += f.size;
      }
    }
    if (files === 0 && path !== '/') return undefined;
    return { path, name: baseName(path), type: 'dir', size, files, mtime: '2024-05-01T12:00:00.000Z' };
  }
}

function dateOf(f: MemoryFile): string {
  return f.date ?? (f.mtime ?? '2024-05-01').slice(0, 10);
}

/** Byte order of UTF-8, the API's stable listing order. */
function compare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function page(path: string, all: Entry[], cursor: string | undefined, limit: number): ListResponse {
  all.sort((a, b) => compare(a.name, b.name));
  const start = cursor ? all.findIndex((e) => compare(e.name, cursor) > 0) : 0;
  const entries = start < 0 ? [] : all.slice(start, start + limit);
  const last = entries.at(-1);
  return {
    path,
    entries,
    ...(last && start + entries.length < all.length ? { nextCursor: last.name } : {}),
  };
}
