/**
 * Response shapes of HTTP API v1 (design.md §5, a contract shared by the handlers, the CLI and the
 * mount client). Pure types: no runtime code, so the mount client can import them without pulling
 * any server dependency into its graph.
 */

export type Scope = 'read' | 'write' | 'admin';
export type ObjectState = 'active' | 'deleted' | 'missing' | 'inconsistent';

/** One file or directory as the API describes it. Times are ISO-8601 strings. */
export interface Entry {
  path: string;
  name: string;
  type: 'file' | 'dir';
  /** Bytes for files; total bytes beneath for directories (rollup). */
  size: number;
  mtime: string;
  etag?: string;
  versionId?: string;
  sha256?: string;
  contentType?: string;
  /** Files beneath a directory (rollup); absent for files. */
  files?: number;
}

/** GET /v1/resolve?path= */
export interface ResolveResponse extends Entry {
  bucket: string;
  key: string;
  state: ObjectState;
  /** `yyyy-mm-dd` the file is listed under in /v1/by-date. */
  date?: string;
  metadata?: Record<string, string>;
  /**
   * A file whose path is also a directory: keys under `path/` exist too (written straight to S3;
   * uploads refuse this with 409 path_conflict). `/v1/list` returns both entries; mounts show only
   * the directory; the file stays readable through this resolve (`strata cat`).
   */
  alsoDirectory?: true;
  /** Present with `&presign=1`: a GET URL usable with Range, pinned to this version. */
  url?: string;
  urlExpiresAt?: string;
}

/** GET /v1/list?path=&cursor=&limit= — entries in stable byte order of their names. */
export interface ListResponse {
  path: string;
  entries: Entry[];
  /** Opaque keyset cursor; absent on the last page. */
  nextCursor?: string;
}

/** GET /v1/dates */
export interface DatesResponse {
  dates: Array<{ date: string; files: number; bytes: number }>;
}

/** GET /v1/by-date/{yyyy-mm-dd}?cursor= */
export interface ByDateResponse {
  date: string;
  entries: Entry[];
  nextCursor?: string;
}

export type ChangeOp = 'put' | 'delete' | 'drift';

/** One row of the append-only change journal. */
export interface Change {
  seq: number;
  op: ChangeOp;
  path: string;
  etag?: string;
  size?: number;
  at: string;
  /** Reconcile run that healed this path (op = 'drift'). */
  runId?: string;
}

/** GET /v1/changes?since=&limit= — `since` is exclusive; poll again with `nextSince`. */
export interface ChangesResponse {
  changes: Change[];
  nextSince: number;
  /** Highest sequence in the journal when the page was read. */
  latest: number;
}

/** GET /v1/stats?path= */
export interface StatsResponse {
  path: string;
  files: number;
  bytes: number;
  byState?: Partial<Record<ObjectState, number>>;
}

/** A mount client advertising itself for peer block sharing. */
export interface PeerInfo {
  id: string;
  /** host:port of its peer server. */
  address: string;
  lastSeen: string;
}

export interface PeersResponse {
  peers: PeerInfo[];
}

/** POST /v1/uploads response. */
export interface UploadSession {
  uploadId: string;
  path: string;
  mode: 'single' | 'multipart';
  url?: string;
  headers?: Record<string, string>;
  partSize?: number;
  parts?: Array<{ partNumber: number; url: string }>;
  partCount?: number;
  expiresAt: string;
}

/** Error body of every non-2xx response. */
export interface ErrorBody {
  error: { code: string; message: string; [extra: string]: unknown };
}
