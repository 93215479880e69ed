/**
 * PostgreSQL store of upload sessions and per-prefix quotas (migration 0020_uploads.sql).
 *
 * Quota accounting: presign reserves the declared size in every quota whose prefix covers the path
 * (checked against limit − reserved − used); the indexer's batch transaction calls settleUploads,
 * which moves the reservation to `used`; expiry releases it, and so does abort — for a single PUT
 * only once its URL has expired (abortSession). Lock order is always session
 * rows (by id) before quota rows (by prefix), so concurrent presigns, settlements and releases
 * cannot deadlock.
 */
import { QuotaExceededError } from '../../core/errors.ts';
import { ancestorsOf, keyForPath, normalizePath } from '../../core/paths.ts';
import { type Pool, type Queryable, withTransaction } from './pool.ts';

type Db = Queryable;

export type UploadState = 'pending' | 'completed' | 'aborted' | 'expired';

export interface SessionRow {
  id: string;
  path: string;
  key: string;
  size: number;
  sha256: string | null;
  contentType: string;
  date: string | null;
  metadata: Record<string, string> | null;
  mode: 'single' | 'multipart';
  s3UploadId: string | null;
  partSize: number | null;
  partCount: number | null;
  state: UploadState;
  tokenId: string | null;
  idempotencyKey: string | null;
  bodyHash: string | null;
  quotaPrefixes: string[];
  reservedBytes: number;
  createdAt: Date;
  expiresAt: Date;
  completedAt: Date | null;
  /** Unquoted ETag S3 returned at multipart completion (migration 0021). */
  completedEtag: string | null;
}

export type NewSession = Omit<
  SessionRow,
  'state' | 'quotaPrefixes' | 'reservedBytes' | 'createdAt' | 'completedAt' | 'completedEtag'
>;

const COLUMNS = `id, path, key, size::float8 AS size, sha256, content_type, to_char(date, 'YYYY-MM-DD') AS date,
  metadata, mode, s3_upload_id, part_size::float8 AS part_size, part_count, state, token_id, idempotency_key,
  body_hash, quota_prefixes, reserved_bytes::float8 AS reserved_bytes, created_at, expires_at, completed_at,
  completed_etag`;

// biome-ignore lint/suspicious/noExplicitAny: pg rows are untyped
function toRow(r: any): SessionRow {
  return {
    id: r.id,
    path: r.path,
    key: r.key,
    size: r.size,
    sha256: r.sha256,
    contentType: r.content_type,
    date: r.date,
    metadata: r.metadata,
    mode: r.mode,
    s3UploadId: r.s3_upload_id,
    partSize: r.part_size,
    partCount: r.part_count,
    state: r.state,
    tokenId: r.token_id,
    idempotencyKey: r.idempotency_key,
    bodyHash: r.body_hash,
    quotaPrefixes: r.quota_prefixes,
    reservedBytes: r.reserved_bytes,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    completedAt: r.completed_at,
    completedEtag: r.completed_etag ?? null,
  };
}

export async function getSession(db: Db, id: string): Promise<SessionRow | undefined> {
  const { rows } = await db.query(`SELECT ${COLUMNS} FROM upload_sessions WHERE id = $1`, [id]);
  return rows[0] ? toRow(rows[0]) : undefined;
}

export async function findByIdempotencyKey(
  db: Db,
  tokenId: string,
  idempotencyKey: string,
): Promise<SessionRow | undefined> {
  const { rows } = await db.query(
    `SELECT ${COLUMNS} FROM upload_sessions WHERE token_id = $1 AND idempotency_key = $2`,
    [tokenId, idempotencyKey],
  );
  return rows[0] ? toRow(rows[0]) : undefined;
}

export type OpenResult = { created: SessionRow } | { existing: SessionRow };

/**
 * Upload paths that would put a file and a directory under one name: the path is already a
 * directory (it has live files beneath it), or one of its ancestors is a live file. S3 stores
 * both, but a file system cannot show both — the mount would list the name twice and reach only
 * one of them. Returns, per clashing path, what it clashes with. One statement for a whole batch.
 */
export async function findPathClashes(db: Db, paths: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (paths.length === 0) return out;
  const ancestors = [...new Set(paths.flatMap((p) => ancestorsOf(p)))].filter((a) => a !== '/');
  const { rows } = await db.query<{ path: string; kind: 'dir' | 'file' }>(
    `SELECT dir AS path, 'dir' AS kind FROM dir_rollups WHERE dir = ANY($1::text[])
       GROUP BY dir HAVING sum(files) > 0
     UNION ALL
     SELECT path, 'file' AS kind FROM objects WHERE path = ANY($2::text[]) AND state IN ('active', 'inconsistent')`,
    [paths, ancestors],
  );
  const dirs = new Set(rows.filter((r) => r.kind === 'dir').map((r) => r.path));
  const files = new Set(rows.filter((r) => r.kind === 'file').map((r) => r.path));
  for (const p of paths) {
    if (dirs.has(p)) out.set(p, `${p} is a directory`);
    else {
      const file = ancestorsOf(p).find((a) => files.has(a));
      if (file) out.set(p, `${file} is a file, so it cannot hold ${p}`);
    }
  }
  return out;
}

/**
 * Reserves quota and inserts a pending session in one transaction. When another request with the
 * same (token, Idempotency-Key) won a race, returns it as `existing` and reserves nothing.
 * Throws QuotaExceededError (→ 413) carrying the smallest remaining byte count of the covering quotas.
 */
export async function openSession(pool: Pool, s: NewSession): Promise<OpenResult> {
  return withTransaction(pool, async (c) => {
    const { rows: quotas } = await c.query<{ prefix: string; remaining: string }>(
      `SELECT prefix, (limit_bytes - reserved_bytes - used_bytes)::text AS remaining FROM upload_quotas
        WHERE starts_with($1, key_prefix) ORDER BY prefix FOR UPDATE`,
      [s.key],
    );
    for (const q of quotas) {
      const remaining = Number(q.remaining);
      if (remaining < s.size) {
        throw new QuotaExceededError(
          `quota of ${q.prefix} exceeded: ${s.size} bytes requested, ${Math.max(0, remaining)} remaining; delete files or ask an admin to raise the quota`,
          Math.max(0, remaining),
        );
      }
    }
    const prefixes = quotas.map((q) => q.prefix);
    const { rows } = await c.query(
      `INSERT INTO upload_sessions (id, path, key, size, sha256, content_type, date, metadata, mode, s3_upload_id,
         part_size, part_count, token_id, idempotency_key, body_hash, quota_prefixes, reserved_bytes, expires_at)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$4,$17)
       ON CONFLICT (token_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
       RETURNING ${COLUMNS}`,
      [
        s.id,
        s.path,
        s.key,
        s.size,
        s.sha256,
        s.contentType,
        s.date,
        s.metadata ? JSON.stringify(s.metadata) : null,
        s.mode,
        s.s3UploadId,
        s.partSize,
        s.partCount,
        s.tokenId,
        s.idempotencyKey,
        s.bodyHash,
        prefixes,
        s.expiresAt,
      ],
    );
    if (!rows[0]) {
      const existing = await findByIdempotencyKey(c, s.tokenId ?? '', s.idempotencyKey ?? '');
      if (!existing) throw new Error('idempotency conflict without an existing session (retry the request)');
      // Undo this transaction's reservations: the winner already holds its own.
      await c.query('ROLLBACK');
      await c.query('BEGIN');
      return { existing };
    }
    if (prefixes.length > 0) {
      await c.query(
        `UPDATE upload_quotas SET reserved_bytes = reserved_bytes + $2, updated_at = now() WHERE prefix = ANY($1)`,
        [prefixes, s.size],
      );
    }
    return { created: toRow(rows[0]) };
  });
}

/** S3 quotes ETags in responses; the index stores them bare. */
export function bareEtag(etag: string): string {
  return etag.replace(/^"|"$/g, '');
}

/**
 * Marks a multipart session completed (S3 confirmed the object) and records the ETag S3 returned.
 * The indexer settles the reservation when the put event of that ETag arrives (settleUploads); when
 * the event came first — it can beat this update, or be superseded before it — its ETag is among
 * the session's `event_etags` (rememberEventEtags) and the session is settled here. The UPDATE
 * takes the session row before any quota row (the store's lock order), and an indexer batch
 * holding the row is waited for, so its recorded ETags are seen: one side always settles.
 *
 * Then, for that race, copies what the session declared onto the indexed object if the indexer got
 * there first (see settleUploads for the usual order). This runs after the commit, holding no
 * session lock: an indexer batch locks object rows before session rows, so the reverse order here
 * could deadlock with it, and a batch that locks the session later sees the ETag — either way one
 * side writes the digest.
 */
export async function markCompleted(pool: Pool, id: string, etag?: string): Promise<boolean> {
  const s = await withTransaction(pool, async (c) => {
    const { rows } = await c.query(
      `UPDATE upload_sessions SET state = 'completed', completed_at = COALESCE(completed_at, now()),
              completed_etag = COALESCE($2, completed_etag)
        WHERE id = $1 AND state IN ('pending', 'completed') AND mode = 'multipart'
        RETURNING ${COLUMNS}, COALESCE(completed_etag = ANY(event_etags), false) AS event_seen`,
      [id, etag === undefined ? null : bareEtag(etag)],
    );
    if (!rows[0]) return undefined;
    const row = toRow(rows[0]);
    if (rows[0].event_seen && row.reservedBytes > 0) {
      await markSettled(c, new Set([row.id]));
      await releaseReservations(c, new Map(row.quotaPrefixes.map((p) => [p, row.reservedBytes])));
    }
    return row;
  });
  if (!s) return false;
  if (s.completedEtag) await copyDeclaredToIndex(pool, [{ session: s, etag: s.completedEtag }]);
  return true;
}

/**
 * Writes a completed multipart session's declared sha256, content type and metadata onto the index
 * row of the object it produced — the object S3 assembled has no x-amz-meta-sha256 when the digest
 * was only known at `complete` (clients hash large files alongside the upload), and without it the
 * index cannot tell a re-sync that the file is unchanged. Only fills what the row lacks, and only on
 * the row whose ETag is the one S3 returned for this session.
 *
 * The `by-date` day is not touched here: the session's date travels as object metadata
 * (`strata-date`, set at CreateMultipartUpload) and the indexer files the object under it, so day
 * rollups stay consistent.
 */
async function copyDeclaredToIndex(
  db: Db,
  done: Array<{ session: SessionRow; etag: string }>,
): Promise<void> {
  const rows = done.filter((d) => d.session.sha256 || d.session.metadata);
  if (rows.length === 0) return;
  await db.query(
    `UPDATE objects o SET sha256 = COALESCE(o.sha256, d.sha256),
            content_type = COALESCE(o.content_type, d.content_type),
            metadata = COALESCE(o.metadata, d.metadata), updated_at = now()
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[])
            AS d(path, etag, sha256, content_type, metadata)
      WHERE o.path = d.path AND o.etag = d.etag AND o.state = 'active'
        AND (o.sha256 IS NULL OR o.content_type IS NULL OR (o.metadata IS NULL AND d.metadata IS NOT NULL))`,
    [
      rows.map((d) => d.session.path),
      rows.map((d) => d.etag),
      rows.map((d) => d.session.sha256),
      rows.map((d) => d.session.contentType),
      rows.map((d) => (d.session.metadata ? JSON.stringify(d.session.metadata) : null)),
    ],
  );
}

/**
 * Moves a pending session to `aborted` or `expired` and returns its reservation to the quotas.
 * Returns false when the session was no longer pending (completed, or released by someone else).
 */
export async function releaseSession(pool: Pool, id: string, state: 'aborted' | 'expired'): Promise<boolean> {
  return withTransaction(pool, async (c) => {
    const { rows } = await c.query<{ quota_prefixes: string[]; reserved: string }>(
      `SELECT quota_prefixes, reserved_bytes::text AS reserved FROM upload_sessions
        WHERE id = $1 AND state = 'pending' FOR UPDATE`,
      [id],
    );
    const row = rows[0];
    if (!row) return false;
    await c.query(
      `UPDATE upload_sessions SET state = $2, reserved_bytes = 0, settled_at = now() WHERE id = $1`,
      [id, state],
    );
    await releaseReservations(c, new Map(row.quota_prefixes.map((p) => [p, Number(row.reserved)])));
    return true;
  });
}

/**
 * Aborts a pending session. A multipart session's reservation is released at once (the caller has
 * aborted the S3 upload, so its part URLs can no longer complete an object). A single-PUT session
 * keeps its reservation until its URL expires: S3 cannot revoke a presigned URL, so until then the
 * object may still arrive, and quota released now could be handed out twice. If it does arrive,
 * settleUploads charges it against this reservation; if not, releaseAbortedAfterExpiry returns it.
 * Returns false when the session was no longer pending.
 */
export async function abortSession(pool: Pool, s: Pick<SessionRow, 'id' | 'mode'>): Promise<boolean> {
  if (s.mode === 'multipart') return releaseSession(pool, s.id, 'aborted');
  const { rowCount } = await pool.query(
    `UPDATE upload_sessions SET state = 'aborted' WHERE id = $1 AND state = 'pending'`,
    [s.id],
  );
  return (rowCount ?? 0) > 0;
}

/**
 * Releases the reservations of aborted single-PUT sessions whose URL has expired (see abortSession)
 * and whose object never arrived. Returns how many sessions were released.
 */
export async function releaseAbortedAfterExpiry(pool: Pool, now: Date): Promise<number> {
  return releaseSessionReservations(pool, `state = 'aborted' AND expires_at < $1`, now);
}

/**
 * Zeroes the reservations of the sessions matching `where` (one `$1` parameter) and gives their
 * bytes back to every quota prefix they were charged to, in one transaction. Only the rows selected
 * and locked here are zeroed: re-running the predicate in the UPDATE would also zero a row SKIP
 * LOCKED passed over (e.g. locked by a settlement of the same key that did not take it) once its
 * locker commits — without its bytes released, leaking them from the quota.
 */
async function releaseSessionReservations(pool: Pool, where: string, param: Date): Promise<number> {
  return withTransaction(pool, async (c) => {
    const { rows } = await c.query<{ id: string; quota_prefixes: string[]; reserved: string }>(
      `SELECT id, quota_prefixes, reserved_bytes::text AS reserved FROM upload_sessions
        WHERE reserved_bytes > 0 AND ${where} ORDER BY id FOR UPDATE SKIP LOCKED`,
      [param],
    );
    if (rows.length === 0) return 0;
    const byPrefix = new Map<string, number>();
    for (const r of rows)
      for (const p of r.quota_prefixes) byPrefix.set(p, (byPrefix.get(p) ?? 0) + Number(r.reserved));
    await c.query(`UPDATE upload_sessions SET reserved_bytes = 0, settled_at = now() WHERE id = ANY($1)`, [
      rows.map((r) => r.id),
    ]);
    await releaseReservations(c, byPrefix);
    return rows.length;
  });
}

async function releaseReservations(c: Db, byPrefix: Map<string, number>): Promise<void> {
  if (byPrefix.size === 0) return;
  const prefixes = [...byPrefix.keys()].sort();
  await c.query('SELECT 1 FROM upload_quotas WHERE prefix = ANY($1) ORDER BY prefix FOR UPDATE', [prefixes]);
  await c.query(
    `UPDATE upload_quotas q SET reserved_bytes = GREATEST(0, q.reserved_bytes - d.bytes), updated_at = now()
       FROM unnest($1::text[], $2::bigint[]) AS d(prefix, bytes) WHERE q.prefix = d.prefix`,
    [prefixes, prefixes.map((p) => byPrefix.get(p))],
  );
}

/** Pending sessions whose URLs have expired, oldest first (for the cleanup job). */
export async function listExpired(db: Db, now: Date, limit: number): Promise<SessionRow[]> {
  const { rows } = await db.query(
    `SELECT ${COLUMNS} FROM upload_sessions WHERE state = 'pending' AND expires_at < $1
      ORDER BY expires_at LIMIT $2`,
    [now, limit],
  );
  return rows.map(toRow);
}

/**
 * Releases reservations of sessions completed long ago that the indexer never settled (an event
 * lost on the way; the reconciler re-indexes the object without a session). Returns the count.
 */
export async function releaseUnsettled(pool: Pool, completedBefore: Date): Promise<number> {
  return releaseSessionReservations(pool, `state = 'completed' AND completed_at < $1`, completedBefore);
}

export interface SettledUpload {
  key: string;
  size: number;
  etag: string;
  /** The session the object was uploaded through, when there was one, with what it declared. */
  session?: {
    id: string;
    sha256?: string;
    contentType: string;
    date?: string;
    metadata?: Record<string, string>;
  };
}

/** Sessions of `keys` that are open (pending, or still holding a reservation), locked, oldest first. */
async function lockOpenSessions(client: Db, keys: string[]): Promise<SessionRow[]> {
  const { rows } = await client.query(
    `SELECT ${COLUMNS} FROM upload_sessions
      WHERE key = ANY($1) AND (reserved_bytes > 0 OR state = 'pending') ORDER BY id FOR UPDATE`,
    [keys],
  );
  return rows.map(toRow).sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
}

/** Marks sessions whose object S3 stored as completed and settled, holding no reservation. */
async function markSettled(client: Db, ids: Set<string>): Promise<void> {
  await client.query(
    `UPDATE upload_sessions SET state = CASE WHEN state = 'pending' THEN 'completed' ELSE state END,
       completed_at = COALESCE(completed_at, now()), reserved_bytes = 0, settled_at = now()
     WHERE id = ANY($1)`,
    [[...ids]],
  );
}

/**
 * Settles objects the indexer has just recorded, inside the indexer's batch transaction (pass the
 * transaction's client). For each object the oldest open session it belongs to is marked completed
 * and its reservation leaves `reserved`; every quota covering the key gains `size` bytes of `used`,
 * with or without a session (objects written out of band count too). A single-PUT session belongs
 * by key and size; a multipart one only once its /complete recorded this object's ETag — matched by
 * size, a completed upload's event settled an older abandoned session of the same path, which was
 * then never expired nor aborted in S3 (found by the server soak). An event that comes before its
 * /complete is remembered on the pending multipart sessions of the key (rememberEventEtags), and
 * markCompleted settles then. A multipart session also writes its declared sha256 (and content
 * type and metadata where the row has none) onto the index row — the digest of a large file is
 * often known only at `complete`, after S3 fixed the object's metadata. Returns what each session
 * declared.
 *
 * `used` is bytes currently stored: an overwrite passes the replaced object's size
 * (`replacedSize`), which leaves `used` in the same statement — otherwise every overwrite would
 * leak the old bytes, since a later delete gives back only the current object's size (settleDeletes).
 */
export async function settleUploads(
  client: Db,
  completed: Array<{ key: string; size: number; etag: string; replacedSize?: number; restoredAt?: Date }>,
): Promise<SettledUpload[]> {
  if (completed.length === 0) return [];
  const keys = [...new Set(completed.map((c) => c.key))];
  const open = await lockOpenSessions(client, keys);
  const taken = new Set<string>();
  const releases = new Map<string, number>();
  const matched: Array<{ session: SessionRow; etag: string }> = [];
  const out: SettledUpload[] = [];
  for (const obj of completed) {
    // A version made current again by a versioned delete (index-apply PutChange.restored) that
    // S3 wrote before a session opened is not that session's upload: matching it by size would
    // settle an upload still in flight, and a multipart one's /complete would then answer
    // "completed" without completing it in S3. Its bytes still go to the quotas below.
    const s = open.find(
      (r) =>
        !taken.has(r.id) &&
        r.key === obj.key &&
        r.size === obj.size &&
        !predates(obj.restoredAt, r) &&
        (r.mode === 'single' || r.completedEtag === bareEtag(obj.etag)),
    );
    const settled: SettledUpload = { key: obj.key, size: obj.size, etag: obj.etag };
    if (s) {
      taken.add(s.id);
      matched.push({ session: s, etag: obj.etag });
      for (const p of s.quotaPrefixes) releases.set(p, (releases.get(p) ?? 0) + s.reservedBytes);
      settled.session = {
        id: s.id,
        contentType: s.contentType,
        ...(s.sha256 ? { sha256: s.sha256 } : {}),
        ...(s.date ? { date: s.date } : {}),
        ...(s.metadata ? { metadata: s.metadata } : {}),
      };
    }
    out.push(settled);
  }
  // Multipart sessions whose completion ETag is the object's: the index gets what they declared.
  await copyDeclaredToIndex(
    client,
    matched.filter((m) => m.session.completedEtag === bareEtag(m.etag)),
  );
  if (taken.size > 0) await markSettled(client, taken);
  // A restored version written before a session opened is not its upload (as above).
  await rememberEventEtags(
    client,
    open,
    completed.map((c) => ({ ...c, writtenAt: c.restoredAt })),
  );
  // One ordered lock over every quota row touched, then the two updates.
  await client.query(
    `SELECT 1 FROM upload_quotas q WHERE q.prefix = ANY($1)
        OR EXISTS (SELECT 1 FROM unnest($2::text[]) k WHERE starts_with(k, q.key_prefix))
      ORDER BY q.prefix FOR UPDATE`,
    [[...releases.keys()], keys],
  );
  await releaseReservations(client, releases);
  await client.query(
    `UPDATE upload_quotas q SET used_bytes = GREATEST(0, q.used_bytes + x.bytes), updated_at = now()
       FROM (SELECT q2.prefix, sum(i.size - i.replaced)::bigint AS bytes
               FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS i(key, size, replaced)
               JOIN upload_quotas q2 ON starts_with(i.key, q2.key_prefix)
              GROUP BY q2.prefix) x
      WHERE q.prefix = x.prefix`,
    [completed.map((c) => c.key), completed.map((c) => c.size), completed.map((c) => c.replacedSize ?? 0)],
  );
  return out;
}

/**
 * Slack when comparing an object's S3 LastModified with a session's creation: LastModified is
 * truncated to the second and read from S3's clock (createdAt from PostgreSQL's), and a multipart
 * object's is its CreateMultipartUpload, made just before the session row is inserted. 5 s covers
 * these; a version made current again is normally hours or days old.
 */
const SESSION_CLOCK_SLACK_MS = 5_000;

/** Whether an object S3 last modified at `modifiedAt` was written before session `s` opened. */
function predates(modifiedAt: Date | undefined, s: SessionRow): boolean {
  return modifiedAt !== undefined && modifiedAt.getTime() < s.createdAt.getTime() - SESSION_CLOCK_SLACK_MS;
}

/**
 * ETags a pending multipart session keeps (newest last). Its own event beats its /complete by at
 * most the few milliseconds between S3 completing the upload and the handler's update, or is
 * superseded by a put indexed in that window: 16 covers that many same-size puts of one key in it.
 */
const EVENT_ETAGS_KEPT = 16;

/**
 * Records the ETags of `puts` on the pending multipart sessions of the same key and size that
 * opened before the object was written (when that time is known), for markCompleted: such an event
 * may be the session's own object arriving before its /complete. Recording an ETag that is not the
 * session's is harmless — /complete settles only on the ETag S3 returned for this very upload.
 * Call with the sessions locked by lockOpenSessions in the same transaction.
 */
async function rememberEventEtags(
  client: Db,
  open: SessionRow[],
  puts: Array<{ key: string; size: number; etag: string; writtenAt: Date | undefined }>,
): Promise<void> {
  const ids: string[] = [];
  const etags: string[] = [];
  for (const put of puts) {
    for (const r of open) {
      if (r.mode !== 'multipart' || r.state !== 'pending' || r.key !== put.key || r.size !== put.size)
        continue;
      if (put.writtenAt && r.createdAt.getTime() > put.writtenAt.getTime() + SESSION_CLOCK_SLACK_MS) continue;
      ids.push(r.id);
      etags.push(bareEtag(put.etag));
    }
  }
  if (ids.length === 0) return;
  // unnest keeps the batch's order (WITH ORDINALITY), so the newest ETags are the ones kept.
  await client.query(
    `UPDATE upload_sessions u SET event_etags = (u.event_etags || d.etags)[
              greatest(1, cardinality(u.event_etags) + cardinality(d.etags) - $3 + 1):]
       FROM (SELECT id, array_agg(etag ORDER BY n) AS etags
               FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x(id, etag, n) GROUP BY id) d
      WHERE u.id = d.id`,
    [ids, etags, EVENT_ETAGS_KEPT],
  );
}

/**
 * Settles the sessions of uploads S3 stored whose put events the index did not apply: already
 * superseded (a newer put or delete of the key was applied first, e.g. both in one batch) or gone
 * by the time of the HEAD. settleUploads never sees those objects, so their sessions stayed open:
 * a single PUT ended `expired` although S3 acknowledged it, and both modes held their quota
 * reservation until expiry (15 min) or the unsettled grace (1 h), refusing other uploads meanwhile.
 * The bytes never entered `used` (the object was never the indexed one), so only the reservation
 * is released. Matching is as strict as the evidence allows: a multipart session only once its
 * /complete recorded this very ETag (never one still in flight: its /complete must still reach S3,
 * and settles then if the ETag it gets is one remembered here);
 * a single-PUT session by key and size, the oldest, and only if it opened before the object was
 * written (with clock slack). Returns the number of sessions settled.
 */
export async function settleSuperseded(
  pool: Pool,
  puts: Array<{ key: string; size: number; etag: string; writtenAt: Date }>,
): Promise<number> {
  if (puts.length === 0) return 0;
  const keys = [...new Set(puts.map((p) => p.key))];
  // Nearly always nothing is open for these keys: one indexed probe, no transaction.
  const probe = await pool.query(
    `SELECT 1 FROM upload_sessions WHERE key = ANY($1) AND (reserved_bytes > 0 OR state = 'pending') LIMIT 1`,
    [keys],
  );
  if (probe.rows.length === 0) return 0;
  return withTransaction(pool, async (client) => {
    const open = await lockOpenSessions(client, keys);
    const taken = new Set<string>();
    const releases = new Map<string, number>();
    for (const put of puts) {
      const s = open.find(
        (r) =>
          !taken.has(r.id) &&
          r.key === put.key &&
          r.size === put.size &&
          (r.mode === 'multipart'
            ? r.state === 'completed' && r.completedEtag === bareEtag(put.etag)
            : r.state === 'pending' &&
              r.createdAt.getTime() <= put.writtenAt.getTime() + SESSION_CLOCK_SLACK_MS),
      );
      if (!s) continue;
      taken.add(s.id);
      for (const p of s.quotaPrefixes) releases.set(p, (releases.get(p) ?? 0) + s.reservedBytes);
    }
    // A multipart upload superseded before its /complete recorded the ETag settles there.
    await rememberEventEtags(client, open, puts);
    if (taken.size === 0) return 0;
    await markSettled(client, taken);
    await releaseReservations(client, releases);
    return taken.size;
  });
}

/** Gives deleted objects' bytes back to the quotas covering them (the indexer may call it on deletes). */
export async function settleDeletes(
  client: Db,
  deleted: Array<{ key: string; size: number }>,
): Promise<void> {
  if (deleted.length === 0) return;
  await client.query(
    `SELECT 1 FROM upload_quotas q WHERE EXISTS (SELECT 1 FROM unnest($1::text[]) k WHERE starts_with(k, q.key_prefix))
      ORDER BY q.prefix FOR UPDATE`,
    [deleted.map((d) => d.key)],
  );
  await client.query(
    `UPDATE upload_quotas q SET used_bytes = GREATEST(0, q.used_bytes - x.bytes), updated_at = now()
       FROM (SELECT q2.prefix, sum(i.size)::bigint AS bytes
               FROM unnest($1::text[], $2::bigint[]) AS i(key, size)
               JOIN upload_quotas q2 ON starts_with(i.key, q2.key_prefix)
              GROUP BY q2.prefix) x
      WHERE q.prefix = x.prefix`,
    [deleted.map((d) => d.key), deleted.map((d) => d.size)],
  );
}

export interface Quota {
  prefix: string;
  limitBytes: number;
  reservedBytes: number;
  usedBytes: number;
}

/** Creates or changes the quota of a directory prefix (admin operation; `used` is kept). */
export async function setQuota(
  db: Db,
  dataPrefix: string,
  prefix: string,
  limitBytes: number,
): Promise<Quota> {
  const dir = normalizePath(prefix, { directory: true, dataPrefix });
  // The key prefix ends with "/" so /team does not cover /team-b.
  const keyPrefix =
    dir === '/' ? keyForPath(dataPrefix, '/x').slice(0, -1) : `${keyForPath(dataPrefix, dir)}/`;
  // A new quota starts with `used` = the bytes already stored beneath it: starting from 0, an
  // overwrite or delete of a file written before the quota would subtract bytes never added, and
  // (clamped at 0) wipe out the bytes counted for files written since — letting them exceed it.
  const { rows } = await db.query(
    `INSERT INTO upload_quotas (prefix, key_prefix, limit_bytes, used_bytes)
     SELECT $1, $2, $3, coalesce(sum(o.size), 0) FROM objects o
      WHERE o.state = 'active' AND ($1 = '/' OR (o.path >= $1 || '/' AND o.path < $1 || '/' || chr(1114111)))
     ON CONFLICT (prefix) DO UPDATE SET limit_bytes = EXCLUDED.limit_bytes, updated_at = now()
     RETURNING prefix, limit_bytes::float8 AS l, reserved_bytes::float8 AS r, used_bytes::float8 AS u`,
    [dir, keyPrefix, limitBytes],
  );
  const r = rows[0];
  return { prefix: r.prefix, limitBytes: r.l, reservedBytes: r.r, usedBytes: r.u };
}

/** Every quota, by prefix (admin listing; the table holds one row per configured prefix). */
export async function listQuotas(db: Db): Promise<Quota[]> {
  const { rows } = await db.query(
    `SELECT prefix, limit_bytes::float8 AS l, reserved_bytes::float8 AS r, used_bytes::float8 AS u
       FROM upload_quotas ORDER BY prefix`,
  );
  return rows.map((r) => ({ prefix: r.prefix, limitBytes: r.l, reservedBytes: r.r, usedBytes: r.u }));
}

export async function getQuota(db: Db, prefix: string): Promise<Quota | undefined> {
  const { rows } = await db.query(
    `SELECT prefix, limit_bytes::float8 AS l, reserved_bytes::float8 AS r, used_bytes::float8 AS u
       FROM upload_quotas WHERE prefix = $1`,
    [prefix],
  );
  const r = rows[0];
  return r ? { prefix: r.prefix, limitBytes: r.l, reservedBytes: r.r, usedBytes: r.u } : undefined;
}

/**
 * One multi-row INSERT of sessions with the quota prefixes each reserved in. With `unlessQuota`,
 * inserts nothing when any quota covers any of the keys (the caller then takes the locking path).
 */
async function insertSessions(
  db: Db,
  accepted: Array<{ s: NewSession; prefixes: string[] }>,
  unlessQuota = false,
  // biome-ignore lint/suspicious/noExplicitAny: pg rows are untyped
): Promise<any[]> {
  const col = <T>(f: (s: NewSession) => T) => accepted.map((a) => f(a.s));
  const { rows } = await db.query(
    `INSERT INTO upload_sessions (id, path, key, size, sha256, content_type, date, metadata, mode, s3_upload_id,
       part_size, part_count, token_id, quota_prefixes, reserved_bytes, expires_at)
     SELECT u.id, u.path, u.key, u.size, u.sha256, u.content_type, u.date, u.metadata, u.mode, u.s3_upload_id,
            u.part_size, u.part_count, u.token_id, COALESCE(string_to_array(NULLIF(u.prefixes, ''), E'\\x1f'), ARRAY[]::text[]), u.size, u.expires_at
       FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::date[], $8::jsonb[],
                   $9::text[], $10::text[], $11::bigint[], $12::int[], $13::text[], $14::text[], $15::timestamptz[])
         AS u(id, path, key, size, sha256, content_type, date, metadata, mode, s3_upload_id, part_size, part_count,
              token_id, prefixes, expires_at)
      WHERE NOT $16::boolean OR NOT EXISTS (
              SELECT 1 FROM upload_quotas q WHERE EXISTS (SELECT 1 FROM unnest($3::text[]) k WHERE starts_with(k, q.key_prefix)))
     RETURNING ${COLUMNS}`,
    [
      col((s) => s.id),
      col((s) => s.path),
      col((s) => s.key),
      col((s) => s.size),
      col((s) => s.sha256),
      col((s) => s.contentType),
      col((s) => s.date),
      col((s) => (s.metadata ? JSON.stringify(s.metadata) : null)),
      col((s) => s.mode),
      col((s) => s.s3UploadId),
      col((s) => s.partSize),
      col((s) => s.partCount),
      col((s) => s.tokenId),
      // Arrays of arrays must be rectangular in PostgreSQL: pass each list joined by U+001F.
      accepted.map((a) => a.prefixes.join('\u001f')),
      col((s) => s.expiresAt),
      unlessQuota,
    ],
  );
  return rows;
}

/**
 * Opens many sessions (no Idempotency-Key) in one transaction — the batch endpoint's path: one
 * round trip per step instead of per entry. Each entry is checked against the quotas in order; an
 * entry that does not fit gets a QuotaExceededError in its slot and reserves nothing.
 */
export async function openSessions(
  pool: Pool,
  sessions: NewSession[],
): Promise<Array<SessionRow | QuotaExceededError>> {
  if (sessions.length === 0) return [];
  // Fast path — no quota covers any of the keys, the common case: one autocommitted statement
  // instead of BEGIN / lock quotas / INSERT / COMMIT (four round trips to the database per batch).
  // A quota created concurrently is missed exactly as it would be by the locking path had the batch
  // come a moment earlier; settlement still counts these objects as used.
  const fast = await insertSessions(
    pool,
    sessions.map((s) => ({ s, prefixes: [] })),
    true,
  );
  if (fast.length > 0) {
    const byId = new Map(fast.map((r) => [r.id as string, toRow(r)]));
    return sessions.map((s) => byId.get(s.id) as SessionRow);
  }
  return withTransaction(pool, async (c) => {
    const { rows: quotas } = await c.query<{ prefix: string; key_prefix: string; remaining: string }>(
      `SELECT prefix, key_prefix, (limit_bytes - reserved_bytes - used_bytes)::text AS remaining FROM upload_quotas q
        WHERE EXISTS (SELECT 1 FROM unnest($1::text[]) k WHERE starts_with(k, q.key_prefix))
        ORDER BY prefix FOR UPDATE`,
      [sessions.map((s) => s.key)],
    );
    const remaining = new Map(quotas.map((q) => [q.prefix, Number(q.remaining)]));
    const reserve = new Map<string, number>();
    const accepted: Array<{ s: NewSession; prefixes: string[] }> = [];
    const out: Array<SessionRow | QuotaExceededError | undefined> = [];
    for (const s of sessions) {
      const covering = quotas.filter((q) => s.key.startsWith(q.key_prefix));
      const short = covering.find((q) => (remaining.get(q.prefix) ?? 0) < s.size);
      if (short) {
        const left = Math.max(0, remaining.get(short.prefix) ?? 0);
        out.push(
          new QuotaExceededError(
            `quota of ${short.prefix} exceeded: ${s.size} bytes requested, ${left} remaining; delete files or ask an admin to raise the quota`,
            left,
          ),
        );
        continue;
      }
      for (const q of covering) {
        remaining.set(q.prefix, (remaining.get(q.prefix) ?? 0) - s.size);
        reserve.set(q.prefix, (reserve.get(q.prefix) ?? 0) + s.size);
      }
      accepted.push({ s, prefixes: covering.map((q) => q.prefix) });
      out.push(undefined);
    }
    if (accepted.length > 0) {
      const rows = await insertSessions(c, accepted);
      const byId = new Map(rows.map((r) => [r.id as string, toRow(r)]));
      let k = 0;
      for (let i = 0; i < out.length; i++) {
        if (out[i] === undefined) out[i] = byId.get((accepted[k++] as { s: NewSession }).s.id);
      }
    }
    if (reserve.size > 0) {
      const prefixes = [...reserve.keys()];
      await c.query(
        `UPDATE upload_quotas q SET reserved_bytes = q.reserved_bytes + d.bytes, updated_at = now()
           FROM unnest($1::text[], $2::bigint[]) AS d(prefix, bytes) WHERE q.prefix = d.prefix`,
        [prefixes, prefixes.map((p) => reserve.get(p))],
      );
    }
    return out as Array<SessionRow | QuotaExceededError>;
  });
}
