/**
 * fauxqs (S3 + SQS) embedded in-process on 127.0.0.1, plus the hook that lets the stack synthesize
 * S3 event notifications.
 *
 * Design note: fauxqs's `startFauxqs()` binds 0.0.0.0 and hides its stores, so we assemble the same
 * pieces ourselves: stores + optional SQLite persistence (fauxqs 2.4.1 can persist S3 objects,
 * buckets, queues and messages to `dataDir`) + `buildApp()` listening on 127.0.0.1. Object mutations
 * are observed by wrapping the S3 store's mutating methods — no proxy in the data path — and the
 * S3 operation that caused them (Put / Post / Copy / CompleteMultipartUpload / Delete) is read from
 * the request via AsyncLocalStorage entered in a `preHandler` hook (after body parsing, so the
 * context reaches the route handler).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { LRUCache } from 'lru-cache';
import {
  type Credentials,
  errorXml,
  isPresigned,
  type S3Refusal,
  verifyChecksum,
  verifyPresigned,
} from './s3-auth.ts';
import type { S3EventName } from './s3-events.ts';

export interface ObjectMutation {
  eventName: S3EventName;
  bucket: string;
  key: string;
  size?: number;
  eTag?: string;
  sourceIp: string;
}

export interface EmulatorOptions {
  /** Directory for fauxqs's SQLite persistence; omit for in-memory state. */
  dataDir?: string;
  region: string;
  /** Called synchronously after each successful object create/remove in any bucket. */
  onMutation?: (m: ObjectMutation) => void;
  /**
   * The stack's credentials: with them, presigned requests are verified as S3 does (signature,
   * expiry) and so is a sent x-amz-checksum-sha256 (local/s3-auth.ts).
   */
  credentials?: Credentials;
}

export interface Emulator {
  endpoint: string;
  port: number;
  createBucket(name: string): void;
  stop(): Promise<void>;
}

interface HookRequest {
  method: string;
  url: string;
  query: unknown;
  headers: Record<string, unknown>;
  ip: string;
  body?: unknown;
}

interface HookReply {
  code(status: number): HookReply;
  header(name: string, value: string): HookReply;
  send(payload: string): HookReply;
}

interface RequestInfo {
  method: string;
  query: Record<string, unknown>;
  headers: Record<string, unknown>;
  ip: string;
}

// Minimal views of fauxqs internals we touch (dist files of the pinned 2.4.1; not in its exports).
interface StoredObject {
  contentLength: number;
  etag: string;
  lastModified: Date;
  body: Buffer;
}
interface S3StoreLike {
  putObject(...args: unknown[]): StoredObject;
  completeMultipartUpload(...args: unknown[]): StoredObject & { key: string };
  deleteObject(bucket: string, key: string): void;
  headObject(bucket: string, key: string): StoredObject;
  getObject(bucket: string, key: string): StoredObject;
  buckets: Map<string, Map<string, StoredObject>>;
  hasBucket(name: string): boolean;
  createBucket(name: string): void;
  multipartUploads: Map<string, { bucket: string; key: string }>;
  persistence?: unknown;
  listObjects(bucket: string, options?: ListOptions): ListResult;
}
interface ListOptions {
  prefix?: string;
  delimiter?: string;
  maxKeys?: number;
  startAfter?: string;
  marker?: string;
}
interface ListResult {
  objects: Array<StoredObject & { key: string }>;
  commonPrefixes: string[];
  isTruncated: boolean;
}
interface PersistenceLike {
  load(sqs: unknown, sns: unknown, s3: unknown): void;
  close(): void;
}

async function fauxqsModule<T>(relative: string): Promise<T> {
  const base = import.meta.resolve('fauxqs');
  return (await import(new URL(relative, base).href)) as T;
}

export async function startEmulator(options: EmulatorOptions): Promise<Emulator> {
  // fauxqs loads node:sqlite at import time (for its optional persistence), which prints an
  // ExperimentalWarning on every start; it is noise here.
  const { buildApp } = await withoutSqliteWarning(() => import('fauxqs'));
  const [{ SqsStore }, { SnsStore }, { S3Store }] = await Promise.all([
    fauxqsModule<{ SqsStore: new () => { persistence?: unknown; allQueues(): { persistence?: unknown }[] } }>(
      './sqs/sqsStore.js',
    ),
    fauxqsModule<{ SnsStore: new () => { persistence?: unknown } }>('./sns/snsStore.js'),
    fauxqsModule<{ S3Store: new () => S3StoreLike }>('./s3/s3Store.js'),
  ]);
  const sqsStore = new SqsStore();
  const snsStore = new SnsStore();
  const s3Store = new S3Store();
  byteOrderListing(s3Store);
  let persistence: PersistenceLike | undefined;
  if (options.dataDir) {
    const { PersistenceManager } = await fauxqsModule<{
      PersistenceManager: new (dir: string) => PersistenceLike;
    }>('./persistence.js');
    persistence = new PersistenceManager(options.dataDir);
    // Same order as fauxqs's own startFauxqs: load first, then attach write-through persistence.
    persistence.load(sqsStore, snsStore, s3Store);
    sqsStore.persistence = persistence;
    snsStore.persistence = persistence;
    for (const q of sqsStore.allQueues()) q.persistence = persistence;
    s3Store.persistence = persistence;
    cacheBodies(s3Store);
  }

  const als = new AsyncLocalStorage<RequestInfo>();
  if (options.onMutation) wrapStore(s3Store, als, options.onMutation);

  const app = buildApp({
    logger: false,
    defaultRegion: options.region,
    stores: { sqsStore, snsStore, s3Store } as never,
  });
  if (options.credentials) {
    const credentials = options.credentials;
    const refuse = (reply: HookReply, r: S3Refusal) =>
      reply.code(r.status).header('content-type', 'application/xml').send(errorXml(r));
    app.addHook('onRequest', async (request: HookRequest, reply: HookReply) => {
      if (!isPresigned(request.url)) return;
      const r = verifyPresigned(request as never, credentials);
      if (r) return refuse(reply, r);
    });
    app.addHook('preHandler', async (request: HookRequest, reply: HookReply) => {
      if (request.method !== 'PUT') return;
      const r = verifyChecksum(request.headers as never, request.body);
      if (r) return refuse(reply, r);
    });
  }
  // S3 stores the x-amz-meta-* query parameters of a presigned request as user metadata (the
  // SDK's presigner hoists metadata headers into the query); fauxqs reads metadata only from
  // headers, so a single-PUT upload's `date` (strata-date) and metadata were silently dropped
  // locally and the file was listed under its upload day (found by the server soak).
  app.addHook('onRequest', async (request: HookRequest) => {
    if (!isPresigned(request.url)) return;
    for (const [k, v] of new URL(request.url, 'http://local').searchParams) {
      const name = k.toLowerCase();
      if (name.startsWith('x-amz-meta-') && request.headers[name] === undefined) request.headers[name] = v;
    }
  });
  app.addHook('preHandler', (request: HookRequest, _reply: unknown, done: () => void) => {
    als.run(
      {
        method: request.method,
        query: (request.query ?? {}) as Record<string, unknown>,
        headers: request.headers as Record<string, unknown>,
        ip: request.ip,
      },
      done,
    );
  });
  if (persistence) {
    const p = persistence;
    app.addHook('preClose', () => p.close());
  }
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('fauxqs did not bind a TCP port');
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    port: address.port,
    createBucket(name) {
      if (!s3Store.hasBucket(name)) s3Store.createBucket(name);
    },
    async stop() {
      await app.close();
    },
  };
}

function wrapStore(
  store: S3StoreLike,
  als: AsyncLocalStorage<RequestInfo>,
  emit: (m: ObjectMutation) => void,
): void {
  const put = store.putObject.bind(store);
  const complete = store.completeMultipartUpload.bind(store);
  const del = store.deleteObject.bind(store);

  store.putObject = (...args: unknown[]) => {
    const obj = put(...args);
    const req = als.getStore();
    // Copy is a PUT with x-amz-copy-source; Post is a browser form upload (POST to the bucket).
    const eventName: S3EventName = req?.headers['x-amz-copy-source']
      ? 'ObjectCreated:Copy'
      : req?.method === 'POST'
        ? 'ObjectCreated:Post'
        : 'ObjectCreated:Put';
    emit({
      eventName,
      bucket: args[0] as string,
      key: args[1] as string,
      size: obj.contentLength,
      eTag: obj.etag,
      sourceIp: req?.ip ?? '127.0.0.1',
    });
    return obj;
  };
  store.completeMultipartUpload = (...args: unknown[]) => {
    const upload = store.multipartUploads.get(args[0] as string);
    const obj = complete(...args);
    const req = als.getStore();
    emit({
      eventName: 'ObjectCreated:CompleteMultipartUpload',
      bucket: upload?.bucket ?? '',
      key: obj.key,
      size: obj.contentLength,
      eTag: obj.etag,
      sourceIp: req?.ip ?? '127.0.0.1',
    });
    return obj;
  };
  store.deleteObject = (bucket: string, key: string) => {
    let existed = false;
    try {
      store.headObject(bucket, key);
      existed = true;
    } catch {
      existed = false;
    }
    del(bucket, key);
    // fauxqs buckets are unversioned, so a delete removes the object (never a delete marker).
    // Deleting an absent key changes nothing, so it produces no event here.
    if (existed) {
      const req = als.getStore();
      emit({
        eventName: 'ObjectRemoved:Delete',
        bucket,
        key,
        sourceIp: req?.ip ?? '127.0.0.1',
      });
    }
  };
}

/**
 * With persistence, fauxqs keeps only metadata in memory and reads the whole body from SQLite on
 * every GET — synchronously, on the event loop the API and pollers share — even for an 8 MiB
 * ranged GET. A mount reading a 200 MiB file with 32 GETs in flight made it load 200 MiB 25 times;
 * the loop stalled past the mount's 3 s response-head timeout and reads failed with EIO. Bodies
 * read once stay here (keyed by etag + lastModified, so an overwrite is never served stale) and a
 * ranged GET slices them, as it does on an in-memory store.
 */
/** UTF-8 byte order: the order S3 lists keys in (and PostgreSQL's COLLATE "C"). */
function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * fauxqs sorts listings with localeCompare ('d/émoji' before 'd/hash', '_' and '-' by locale
 * rules) and then pages with `key <= startAfter` (UTF-16 order), so a listing was neither in S3's
 * UTF-8 byte order nor safely pageable: reconcile's merge-join rejected it (KeyOrderError) and its
 * shard messages went to the DLQ, and a continuation token could skip or repeat keys. This
 * replaces the listing with S3's semantics: all keys under the prefix (fauxqs's own filter and
 * errors), sorted by bytes, then start-after, delimiter roll-up and max-keys as S3 applies them.
 */
function byteOrderListing(store: S3StoreLike): void {
  const original = store.listObjects.bind(store);
  store.listObjects = (bucket, options = {}) => {
    const prefix = options.prefix ?? '';
    const all = original(bucket, { prefix, maxKeys: Number.MAX_SAFE_INTEGER }).objects;
    all.sort((a, b) => compareKeys(a.key, b.key));
    const startAfter = options.startAfter ?? options.marker ?? '';
    const maxKeys = options.maxKeys ?? 1000;
    const objects: ListResult['objects'] = [];
    const prefixes = new Set<string>();
    let isTruncated = false;
    let last: string | undefined;
    for (const obj of all) {
      if (startAfter && compareKeys(obj.key, startAfter) <= 0) continue;
      const cut = options.delimiter ? obj.key.indexOf(options.delimiter, prefix.length) : -1;
      const common = cut >= 0 ? obj.key.slice(0, cut + (options.delimiter as string).length) : undefined;
      if (
        common !== undefined &&
        (prefixes.has(common) || (startAfter && compareKeys(common, startAfter) <= 0))
      ) {
        continue;
      }
      if (objects.length + prefixes.size >= maxKeys) {
        isTruncated = true;
        break;
      }
      if (common !== undefined) prefixes.add(common);
      else objects.push(obj);
      last = common ?? obj.key;
    }
    // fauxqs continues a truncated page after its last *object* (V2 token, V1 NextMarker), not
    // after its last entry: prefixes sorting after that object would come again on the next page
    // (reconcile's shard planner saw a sub-directory twice). S3 may return fewer entries than
    // max-keys, so such trailing prefixes are left to the next page instead.
    const lastObject = objects.at(-1)?.key;
    if (isTruncated && lastObject !== undefined && last !== lastObject) {
      for (const p of prefixes) if (compareKeys(p, lastObject) > 0) prefixes.delete(p);
    }
    return { objects, commonPrefixes: [...prefixes], isTruncated };
  };
}

function cacheBodies(store: S3StoreLike): void {
  const read = store.getObject.bind(store);
  // 512 MiB: a few large files being read at once on a development machine; bodies above half of
  // it are served uncached rather than evicting everything else.
  const maxBytes = 512 * 1024 * 1024;
  const bodies = new LRUCache<string, { version: string; body: Buffer }>({
    maxSize: maxBytes,
    sizeCalculation: (v) => Math.max(1, v.body.length),
  });
  store.getObject = (bucket: string, key: string) => {
    const meta = store.buckets.get(bucket)?.get(key);
    // Absent (fauxqs raises its S3 error), or a body still held in memory: nothing to cache.
    if (!meta || meta.body.length > 0 || meta.contentLength === 0) return read(bucket, key);
    const id = `${bucket}\n${key}`;
    const version = `${meta.etag} ${meta.lastModified.getTime()}`;
    const hit = bodies.get(id);
    if (hit?.version === version) return { ...meta, body: hit.body };
    const obj = read(bucket, key);
    if (obj.body.length <= maxBytes / 2) bodies.set(id, { version, body: obj.body });
    else bodies.delete(id);
    return obj;
  };
}

/** Runs fn with node:sqlite's ExperimentalWarning suppressed (and only that warning). */
async function withoutSqliteWarning<T>(fn: () => Promise<T>): Promise<T> {
  const original = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const text = typeof warning === 'string' ? warning : warning.message;
    if (/SQLite is an experimental feature/.test(text)) return;
    return (original as (...a: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  try {
    return await fn();
  } finally {
    process.emitWarning = original;
  }
}
