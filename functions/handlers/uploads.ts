/**
 * Upload API: presigned single and multipart uploads (issue 4). Bytes never pass through here —
 * the client PUTs them straight to S3 with the URLs this Lambda signs.
 *
 * Session lifecycle: POST creates a `pending` session (reserving quota); multipart sessions end with
 * POST …/complete (→ `completed`) or DELETE (→ `aborted`); single PUTs need no call, and a DELETE
 * of one keeps its reservation until the URL expires (S3 cannot revoke a presigned URL). The indexer
 * settles the reservation when the object shows up (settleUploads); the cleanup job expires what was
 * abandoned. A multipart session's expiry is idle time: each request for more part URLs extends it,
 * so a multi-hour upload stays alive while a stalled one is reclaimed within one presign lifetime.
 */
import { randomUUID } from 'node:crypto';
import {
  abortMultipart,
  completeMultipart,
  createMultipart,
  presignPart,
  presignPut,
  presignPuts,
} from '../adapters/aws/presign-upload.ts';
import {
  abortSession,
  findByIdempotencyKey,
  findPathClashes,
  getSession,
  listQuotas,
  markCompleted,
  type NewSession,
  openSession,
  openSessions,
  type Quota,
  type SessionRow,
  setQuota,
} from '../adapters/pg/uploads-store.ts';
import type { UploadSession } from '../core/api-types.ts';
import { assertVisible, isVisible, type Principal } from '../core/auth.ts';
import {
  ConflictError,
  NotFoundError,
  QuotaExceededError,
  StrataError,
  ValidationError,
} from '../core/errors.ts';
import { ancestorsOf, normalizePath } from '../core/paths.ts';
import { partRange, validatePartList } from '../core/upload-parts.ts';
import { MAX_OBJECT_BYTES, partLength, planUpload } from '../core/upload-plan.ts';
import {
  parseIdempotencyKey,
  parseSha256,
  parseUploadRequest,
  requestHash,
  sha256Base64,
  type UploadRequest,
} from '../core/upload-request.ts';
import { type ApiRequest, type Deps, httpApi, respond, statusFor } from './http/index.ts';

/**
 * Part URLs returned per response. Signing is local CPU (~50 µs each); 100 URLs cover 800 MiB at
 * the default part size and keep the response well under API Gateway's limits.
 */
export const PART_URLS_PER_RESPONSE = 100;
/** Entries per batch call: enough to amortize the round trip, small enough for one Lambda invocation. */
export const MAX_BATCH_ENTRIES = 100;

function sessionMetadata(req: UploadRequest): Record<string, string> | undefined {
  // Stored with the object so the index (and anyone reading S3 directly) can verify it later.
  const meta: Record<string, string> = { ...(req.metadata ?? {}) };
  if (req.sha256) meta.sha256 = req.sha256;
  if (req.date) meta['strata-date'] = req.date;
  return Object.keys(meta).length ? meta : undefined;
}

function sessionBase(s: SessionRow) {
  return { uploadId: s.id, path: s.path, mode: s.mode, expiresAt: s.expiresAt.toISOString() };
}

function expiresInOf(s: SessionRow): number {
  return Math.max(1, Math.floor((s.expiresAt.getTime() - Date.now()) / 1000));
}

/** What a single-PUT URL of this session binds. */
function putSpec(d: Deps, s: SessionRow) {
  return {
    bucket: d.config.bucket,
    key: s.key,
    size: s.size,
    contentType: s.contentType,
    ...(s.sha256 ? { sha256Base64: sha256Base64(s.sha256) } : {}),
    metadata: sessionMetadata({
      ...s,
      sha256: s.sha256 ?? undefined,
      date: s.date ?? undefined,
      metadata: s.metadata ?? undefined,
    }),
  };
}

/** Single-PUT URLs for sessions opened together (they share one expiry), by session id. */
async function presignSingles(d: Deps, sessions: SessionRow[]) {
  const out = new Map<string, { url: string; headers: Record<string, string> }>();
  const first = sessions[0];
  if (!first) return out;
  const puts = await presignPuts(
    d.s3,
    sessions.map((s) => putSpec(d, s)),
    expiresInOf(first),
  );
  sessions.forEach((s, i) => {
    const put = puts[i];
    if (put) out.set(s.id, put);
  });
  return out;
}

async function describe(d: Deps, s: SessionRow, firstPart = 1): Promise<UploadSession> {
  const expiresIn = expiresInOf(s);
  const base = sessionBase(s);
  if (s.mode === 'single') {
    const put = await presignPut(d.s3, putSpec(d, s), expiresIn);
    return { ...base, url: put.url, headers: put.headers };
  }
  const numbers = partRange(String(firstPart), undefined, s.partCount ?? 0, PART_URLS_PER_RESPONSE);
  return {
    ...base,
    partSize: s.partSize ?? 0,
    partCount: s.partCount ?? 0,
    parts: await presignParts(d, s, numbers, expiresIn),
  };
}

async function presignParts(d: Deps, s: SessionRow, numbers: number[], expiresIn: number) {
  return Promise.all(
    numbers.map(async (partNumber) => ({
      partNumber,
      url: await presignPart(
        d.s3,
        {
          bucket: d.config.bucket,
          key: s.key,
          uploadId: s.s3UploadId ?? '',
          partNumber,
          length: partLength(s.size, s.partSize ?? 0, partNumber),
        },
        expiresIn,
      ),
    })),
  );
}

/** Validates one request and builds its session (creating the S3 multipart upload when needed). */
async function prepare(
  d: Deps,
  principal: Principal,
  req: UploadRequest,
  idempotency: { key: string; bodyHash: string } | undefined,
  clashes?: Map<string, string>,
): Promise<NewSession> {
  assertVisible(principal, req.path);
  // Checked before any S3 call: a refused entry must leave no multipart upload behind.
  const clash = (clashes ?? (await findPathClashes(d.pool, [req.path]))).get(req.path);
  if (clash) {
    throw new ConflictError(`cannot upload ${req.path}: ${clash}; choose another name or delete it first`, {
      code: 'path_conflict',
    });
  }
  const env = d.config.env;
  const plan = planUpload(req.size, {
    multipartThreshold: env.STRATA_MULTIPART_THRESHOLD,
    preferredPartSize: env.STRATA_MULTIPART_PART_SIZE,
  });
  let s3UploadId: string | null = null;
  if (plan.mode === 'multipart') {
    s3UploadId = await createMultipart(d.s3, {
      bucket: d.config.bucket,
      key: req.key,
      contentType: req.contentType,
      metadata: sessionMetadata(req),
    });
  }
  return {
    id: randomUUID(),
    path: req.path,
    key: req.key,
    size: req.size,
    sha256: req.sha256 ?? null,
    contentType: req.contentType,
    date: req.date ?? null,
    metadata: req.metadata ?? null,
    mode: plan.mode,
    s3UploadId,
    partSize: plan.mode === 'multipart' ? plan.partSize : null,
    partCount: plan.mode === 'multipart' ? plan.partCount : null,
    tokenId: principal.tokenId,
    idempotencyKey: idempotency?.key ?? null,
    bodyHash: idempotency?.bodyHash ?? null,
    expiresAt: new Date(Date.now() + env.STRATA_PRESIGN_EXPIRES_SECONDS * 1000),
  };
}

/** POST /v1/uploads: one session, with Idempotency-Key support. */
async function start(
  d: Deps,
  principal: Principal,
  body: unknown,
  idempotencyKey?: string,
): Promise<{ session: UploadSession; replayed: boolean }> {
  const req = parseUploadRequest(body, d.config.dataPrefix);
  let idempotency: { key: string; bodyHash: string } | undefined;
  if (idempotencyKey) {
    assertVisible(principal, req.path);
    idempotency = { key: idempotencyKey, bodyHash: requestHash(req) };
    const prior = await findByIdempotencyKey(d.pool, principal.tokenId, idempotencyKey);
    if (prior) return { session: await replay(d, prior, idempotency.bodyHash), replayed: true };
  }
  const session = await prepare(d, principal, req, idempotency);
  const abortS3 = async () => {
    // Quota refused, the database failed, or another request won: the S3 upload must not linger.
    if (session.s3UploadId) {
      await abortMultipart(d.s3, { bucket: d.config.bucket, key: session.key, uploadId: session.s3UploadId });
    }
  };
  let opened: Awaited<ReturnType<typeof openSession>>;
  try {
    opened = await openSession(d.pool, session);
  } catch (err) {
    await abortS3();
    throw err;
  }
  if ('existing' in opened) {
    await abortS3();
    return { session: await replay(d, opened.existing, idempotency?.bodyHash ?? ''), replayed: true };
  }
  return { session: await describe(d, opened.created), replayed: false };
}

async function replay(d: Deps, prior: SessionRow, bodyHash: string): Promise<UploadSession> {
  if (prior.bodyHash !== bodyHash) {
    throw new ConflictError(
      'this Idempotency-Key was already used with a different request; use a new key for a new upload',
      { code: 'idempotency_key_reused' },
    );
  }
  if (prior.state !== 'pending' || prior.expiresAt.getTime() <= Date.now()) {
    throw new ConflictError(
      `upload ${prior.id} for this Idempotency-Key is ${prior.state === 'pending' ? 'expired' : prior.state}; start a new upload with a new key`,
      { code: 'upload_not_pending' },
    );
  }
  return describe(d, prior);
}

async function loadSession(req: ApiRequest): Promise<SessionRow> {
  const id = req.params.id ?? '';
  // Session ids are UUIDs; anything else cannot exist (and must not reach a uuid-typed comparison).
  const s = /^[0-9a-f-]{36}$/.test(id) ? await getSession(req.deps.pool, id) : undefined;
  if (!s) throw new NotFoundError(`upload not found: ${id}`);
  assertVisible(req.principal, s.path, 'upload');
  return s;
}

function requireMultipartPending(s: SessionRow, action: string): void {
  if (s.mode !== 'multipart') {
    throw new ValidationError(`upload ${s.id} is a single PUT; ${action} applies to multipart uploads only`);
  }
  if (s.state !== 'pending') {
    throw new ConflictError(`upload ${s.id} is ${s.state}; start a new upload`, {
      code: 'upload_not_pending',
    });
  }
}

async function parts(req: ApiRequest) {
  const s = await loadSession(req);
  requireMultipartPending(s, 'requesting part URLs');
  const numbers = partRange(req.query.from, req.query.count, s.partCount ?? 0, PART_URLS_PER_RESPONSE);
  const d = req.deps;
  const expiresIn = d.config.env.STRATA_PRESIGN_EXPIRES_SECONDS;
  const expiresAt = new Date(Date.now() + expiresIn * 1000);
  // Fetching URLs is proof of life: extend the idle expiry (guarded, so an expired session stays so).
  const { rowCount } = await d.pool.query(
    `UPDATE upload_sessions SET expires_at = $2 WHERE id = $1 AND state = 'pending' AND expires_at > now()`,
    [s.id, expiresAt],
  );
  if (!rowCount) {
    throw new ConflictError(`upload ${s.id} expired; start a new upload`, { code: 'upload_not_pending' });
  }
  return {
    uploadId: s.id,
    partSize: s.partSize,
    partCount: s.partCount,
    expiresAt: expiresAt.toISOString(),
    parts: await presignParts(d, { ...s, expiresAt }, numbers, expiresIn),
  };
}

async function complete(req: ApiRequest) {
  const s = await loadSession(req);
  const d = req.deps;
  if (s.mode === 'multipart' && s.state === 'completed') {
    return { uploadId: s.id, path: s.path, state: s.state, size: s.size }; // a retried complete
  }
  requireMultipartPending(s, 'complete');
  const body = req.body as { parts?: unknown; sha256?: unknown } | undefined;
  const list = validatePartList(body?.parts, s.partCount ?? 0);
  const sha256 = body?.sha256 === undefined || body.sha256 === null ? undefined : parseSha256(body.sha256);
  if (sha256 && s.sha256 && sha256 !== s.sha256) {
    throw new ValidationError(
      `sha256 ${sha256} differs from the ${s.sha256} declared when the upload started; the file changed — start a new upload`,
      { code: 'invalid_sha256' },
    );
  }
  if (sha256 && !s.sha256) {
    // Large files are hashed alongside the upload, so the digest arrives here, after S3 fixed the
    // object's metadata: the index gets it from the session (settleUploads / markCompleted), so it
    // is stored before S3 completes the object.
    await d.pool.query('UPDATE upload_sessions SET sha256 = $2 WHERE id = $1 AND sha256 IS NULL', [
      s.id,
      sha256,
    ]);
  }
  let etag: string | undefined;
  try {
    ({ etag } = await completeMultipart(
      d.s3,
      { bucket: d.config.bucket, key: s.key, uploadId: s.s3UploadId ?? '' },
      list,
    ));
  } catch (err) {
    const name = (err as { name?: string }).name ?? '';
    if (name === 'InvalidPart' || name === 'InvalidPartOrder' || name === 'EntityTooSmall') {
      throw new ValidationError(
        `S3 refused the part list (${name}: ${(err as Error).message}); re-upload the listed parts and send the ETags S3 returned`,
        { code: 'invalid_parts', cause: err },
      );
    }
    if (name === 'NoSuchUpload') {
      throw new ConflictError(
        `upload ${s.id} no longer exists in S3 (aborted or expired); start a new upload`,
        {
          code: 'upload_not_pending',
          cause: err,
        },
      );
    }
    throw err;
  }
  // Records S3's ETag so the indexer can tell this session's object from any other of the same
  // size (an event settles a multipart session only by it); if the object's event was indexed
  // first, this settles the session and hands the digest to the index.
  await markCompleted(d.pool, s.id, etag);
  return { uploadId: s.id, path: s.path, state: 'completed', size: s.size, ...(etag ? { etag } : {}) };
}

async function abort(req: ApiRequest) {
  const s = await loadSession(req);
  const d = req.deps;
  if (s.state === 'aborted') return respond(204);
  if (s.state !== 'pending') {
    throw new ConflictError(`upload ${s.id} is ${s.state} and cannot be aborted`, {
      code: 'upload_not_pending',
    });
  }
  if (s.mode === 'multipart') {
    await abortMultipart(d.s3, { bucket: d.config.bucket, key: s.key, uploadId: s.s3UploadId ?? '' });
  }
  // A single PUT's reservation outlives the abort until its URL expires (abortSession says why).
  await abortSession(d.pool, s);
  return respond(204);
}

async function batch(req: ApiRequest) {
  const body = req.body as { uploads?: unknown } | undefined;
  const entries = body?.uploads;
  if (!Array.isArray(entries) || entries.length === 0) {
    throw new ValidationError('body must be {"uploads":[{path,size,…}, …]} with at least one entry');
  }
  if (entries.length > MAX_BATCH_ENTRIES) {
    throw new ValidationError(
      `a batch holds at most ${MAX_BATCH_ENTRIES} entries, got ${entries.length}; split it into several calls`,
    );
  }
  const d = req.deps;
  const results: Array<Record<string, unknown> | undefined> = entries.map(() => undefined);
  const entryError = (index: number, err: unknown) => {
    // Per-entry outcome of a typed error; anything unexpected fails the call (the one mapper logs it).
    if (!(err instanceof StrataError) || statusFor(err) >= 500) throw err;
    const error: Record<string, unknown> = { code: err.code, message: err.message, status: statusFor(err) };
    if (err instanceof QuotaExceededError) error.remainingBytes = err.remainingBytes;
    results[index] = { index, ok: false, error };
  };
  const pending: Array<{ index: number; session: NewSession }> = [];
  // Each entry parsed once; one that does not parse is that entry's error, reported below.
  const parsed = entries.map((entry): { req: UploadRequest } | { err: unknown } => {
    try {
      return { req: parseUploadRequest(entry, d.config.dataPrefix) };
    } catch (err) {
      return { err };
    }
  });
  const paths = parsed.flatMap((p) => ('req' in p ? [p.req.path] : []));
  // One query for the whole batch.
  const clashes = await findPathClashes(d.pool, paths);
  // Within the batch too: `/a` and `/a/b` in one call would create the same clash.
  const inBatch = new Set(paths);
  for (const p of paths) {
    const file = ancestorsOf(p).find((a) => inBatch.has(a));
    if (file && !clashes.has(p)) clashes.set(p, `${file} is uploaded as a file in the same batch`);
  }
  for (const [index, p] of parsed.entries()) {
    try {
      if ('err' in p) throw p.err;
      pending.push({ index, session: await prepare(d, req.principal, p.req, undefined, clashes) });
    } catch (err) {
      entryError(index, err);
    }
  }
  // One expiry for the batch, so its URLs can be signed together with one lifetime.
  const expiresAt = new Date(Date.now() + d.config.env.STRATA_PRESIGN_EXPIRES_SECONDS * 1000);
  for (const p of pending) p.session.expiresAt = expiresAt;
  // One transaction for the whole batch: per-entry transactions made the API the bottleneck.
  const opened = await openSessions(
    d.pool,
    pending.map((p) => p.session),
  );
  // Single-PUT URLs of the whole batch are signed together (presignPuts: one SDK middleware run).
  const singles = opened.filter(
    (o): o is SessionRow => !(o instanceof QuotaExceededError) && o.mode === 'single',
  );
  const urls = await presignSingles(d, singles);
  await Promise.all(
    opened.map(async (o, k) => {
      const { index, session } = pending[k] as { index: number; session: NewSession };
      if (o instanceof QuotaExceededError) {
        if (session.s3UploadId) {
          await abortMultipart(d.s3, {
            bucket: d.config.bucket,
            key: session.key,
            uploadId: session.s3UploadId,
          });
        }
        entryError(index, o);
        return;
      }
      const put = urls.get(o.id);
      results[index] = {
        index,
        ok: true,
        upload: put ? { ...sessionBase(o), url: put.url, headers: put.headers } : await describe(d, o),
      };
    }),
  );
  return { results };
}

/** A quota as the API shows it: what is left is what the next presign is checked against. */
function quotaView(q: Quota) {
  return { ...q, remainingBytes: Math.max(0, q.limitBytes - q.reservedBytes - q.usedBytes) };
}

/**
 * Largest quota accepted: 2^53 − 1 bytes (8 PiB) is exact in JSON numbers and far above any bucket
 * a deployment would cap; bigint in PostgreSQL holds it.
 */
const MAX_QUOTA_BYTES = Number.MAX_SAFE_INTEGER;

/** PUT /v1/quotas {prefix, bytes}: create or change a directory's byte quota (admin). */
async function putQuota(req: ApiRequest) {
  const body = req.body as { prefix?: unknown; bytes?: unknown } | undefined;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ValidationError('body must be {"prefix":"/team-a","bytes":1099511627776}');
  }
  const unknown = Object.keys(body).filter((k) => k !== 'prefix' && k !== 'bytes');
  if (unknown.length > 0) throw new ValidationError(`unknown field "${unknown[0]}"; allowed: prefix, bytes`);
  if (typeof body.prefix !== 'string') {
    throw new ValidationError('prefix must be a directory path such as "/team-a" (or "/" for everything)');
  }
  const bytes = body.bytes;
  if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0 || bytes > MAX_QUOTA_BYTES) {
    throw new ValidationError(
      `bytes must be a whole number of bytes ≥ 0 (0 blocks new uploads), got ${JSON.stringify(bytes)}; e.g. ${MAX_OBJECT_BYTES} for 5 TiB`,
    );
  }
  const dataPrefix = req.deps.config.dataPrefix;
  const dir = normalizePath(body.prefix, { directory: true, dataPrefix });
  // An admin token limited to some prefixes governs quotas inside them only.
  assertVisible(req.principal, dir);
  // Lowering a quota below what is used is allowed: uploads then get 413 until files are deleted.
  return quotaView(await setQuota(req.deps.pool, dataPrefix, dir, bytes));
}

async function getQuotas(req: ApiRequest) {
  const quotas = await listQuotas(req.deps.pool);
  return { quotas: quotas.filter((q) => isVisible(req.principal, q.prefix)).map(quotaView) };
}

export const handler = httpApi({
  'PUT /v1/quotas': { scope: 'admin', handler: putQuota },
  'GET /v1/quotas': { scope: 'admin', handler: getQuotas },
  'POST /v1/uploads': {
    scope: 'write',
    handler: async (req) => {
      const key = parseIdempotencyKey(req.headers['idempotency-key']);
      const { session, replayed } = await start(req.deps, req.principal, req.body, key);
      return respond(201, session, replayed ? { 'idempotent-replayed': 'true' } : {});
    },
  },
  'POST /v1/uploads:batch': { scope: 'write', handler: batch },
  'GET /v1/uploads/{id}/parts': { scope: 'write', handler: parts },
  'POST /v1/uploads/{id}/complete': { scope: 'write', handler: complete },
  'DELETE /v1/uploads/{id}': { scope: 'write', handler: abort },
});
