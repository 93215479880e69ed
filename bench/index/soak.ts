/**
 * Server soak (issues 3, 4, 6 under sustained, adversarial load) through the real local stack.
 *
 * Starts `npm start` on a fresh state directory, then for --minutes runs concurrent producers that
 * mix: single and multipart uploads through presigned URLs (overwriting a bounded set of paths),
 * DELETE /v1/files, `strata rm`, PutObject/DeleteObject straight to S3 with the SDK (no session),
 * aborted and abandoned (left to expire) uploads, duplicate and stale redelivered S3 event messages
 * sent to the ingest queue, and reconcile runs in the middle. Every 10 s it samples the stack's RSS,
 * pg_stat_activity, Redis keys (and keys without a TTL) and the SQS queue/DLQ depths.
 *
 * At the end, with the queues drained and the cleanup schedule past every expiry, it checks exact
 * agreement: index vs S3 listing, /v1/changes replayed from 0, /v1/stats rollups per directory,
 * by-date listings, quota and upload-session accounting. Prints markdown tables; exits 1 on any
 * mismatch.
 *
 * Usage: npx tsx bench/index/soak.ts [--minutes 8] [--producers 6] [--state-dir /tmp/serversoak-state]
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { parseArgs, promisify } from 'node:util';
import {
  DeleteObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { GetQueueUrlCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import pg from 'pg';
import { setQuota } from '../../functions/adapters/pg/uploads-store.ts';
import { pathForKey } from '../../functions/core/paths.ts';
import { buildS3EventRecord } from '../../local/s3-events.ts';
import { queueDepth } from '../../local/stack.ts';
import { seededRandom as rng } from '../../mount-client/object-client/faults.ts';

const run = promisify(execFile);
const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '8' },
    producers: { type: 'string', default: '6' },
    'state-dir': { type: 'string', default: '/tmp/serversoak-state' },
  },
});
const MINUTES = Number(args.minutes);
const PRODUCERS = Number(args.producers);
const STATE = args['state-dir'] as string;
const MiB = 1024 * 1024;
/** Sessions expire after 60 s (the smallest presign lifetime) so the cleanup job runs within the soak. */
const EXPIRY_S = 60;
/** Schedules (cleanup, reconcile planner) every 30 s so expiry is noticed well inside the soak. */
const SCHEDULE_S = 30;

// ---------------------------------------------------------------- stack
const t0 = Date.now();
await rm(STATE, { recursive: true, force: true });
const stack: ChildProcess = spawn(
  'npm',
  ['start', '--', '--port', '0', '--state-dir', STATE, '--schedule-interval', String(SCHEDULE_S)],
  {
    cwd: new URL('../..', import.meta.url).pathname,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      STRATA_PRESIGN_EXPIRES_SECONDS: String(EXPIRY_S),
      STRATA_MULTIPART_PART_SIZE: String(5 * MiB),
      STRATA_LOG_LEVEL: 'WARN',
      POWERTOOLS_LOG_LEVEL: 'WARN',
    },
  },
);
const stackLog: string[] = [];
const keepLog = (b: Buffer) => {
  for (const line of b.toString().split('\n')) if (line.trim()) stackLog.push(line);
  if (stackLog.length > 5000) stackLog.splice(0, stackLog.length - 5000);
};
stack.stdout?.on('data', keepLog);
stack.stderr?.on('data', keepLog);
let stackExited = false;
stack.on('exit', () => {
  stackExited = true;
});
async function stopStack(): Promise<void> {
  if (stackExited) return;
  // The tsx process is the stack; SIGINT to it is a Ctrl-C (ordered shutdown).
  const pidFile = `${STATE}/stack.pid`;
  const pid = existsSync(pidFile)
    ? Number((await readFile(pidFile, 'utf8')).trim().split(/\s/)[0])
    : undefined;
  if (pid) process.kill(pid, 'SIGINT');
  else if (stack.pid) process.kill(-stack.pid, 'SIGINT');
  for (let i = 0; i < 300 && !stackExited; i++) await sleep(100);
  if (!stackExited && stack.pid) process.kill(-stack.pid, 'SIGKILL');
}
process.on('SIGINT', () => {
  void stopStack().then(() => process.exit(130));
});

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

const devPath = `${STATE}/dev.json`;
for (let i = 0; !existsSync(devPath); i++) {
  if (stackExited || i > 1200) {
    console.error(stackLog.join('\n'));
    throw new Error('the local stack did not become ready in 120 s (log above)');
  }
  await sleep(100);
}
await sleep(200);
const dev = JSON.parse(await readFile(devPath, 'utf8')) as {
  apiUrl: string;
  token: string;
  s3Endpoint: string;
  bucket: string;
  dataPrefix: string;
  region: string;
  databaseUrl: string;
  redis: { url: string; token: string } | null;
};
const stackPid = Number((await readFile(`${STATE}/stack.pid`, 'utf8')).trim().split(/\s/)[0]);
console.error(`stack ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (pid ${stackPid})`);

const creds = { accessKeyId: 'strata-local', secretAccessKey: 'strata-local-secret' };
const s3 = new S3Client({
  region: dev.region,
  endpoint: dev.s3Endpoint,
  forcePathStyle: true,
  credentials: creds,
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
});
const sqs = new SQSClient({ region: dev.region, endpoint: dev.s3Endpoint, credentials: creds });
const queueUrl = async (name: string) =>
  (await sqs.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl ?? '';
const queues = {
  ingest: await queueUrl('strata-ingest'),
  ingestDlq: await queueUrl('strata-ingest-dlq'),
  reconcile: await queueUrl('strata-reconcile'),
  reconcileDlq: await queueUrl('strata-reconcile-dlq'),
};
const db = new pg.Pool({ connectionString: dev.databaseUrl, max: 2, application_name: 'soak-observer' });
await setQuota(db, dev.dataPrefix, '/soak', 1024 * 1024 * MiB);

// ---------------------------------------------------------------- API helpers
const auth = { authorization: `Bearer ${dev.token}` };
async function api<T>(method: string, path: string, body?: unknown, ok = [200, 201, 204]): Promise<T> {
  const res = await fetch(`${dev.apiUrl}${path}`, {
    method,
    headers: { ...auth, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  if (!ok.includes(res.status)) throw new Error(`${method} ${path} → ${res.status} ${text.slice(0, 300)}`);
  return (text ? JSON.parse(text) : undefined) as T;
}
const q = encodeURIComponent;

interface Session {
  uploadId: string;
  mode: 'single' | 'multipart';
  url?: string;
  headers?: Record<string, string>;
  partSize?: number;
  parts?: Array<{ partNumber: number; url: string }>;
}

const counts: Record<string, number> = {};
const bump = (k: string, n = 1) => {
  counts[k] = (counts[k] ?? 0) + n;
};
const errors: string[] = [];

function body(size: number, r: () => number): Buffer {
  const b = Buffer.alloc(size);
  const v = Math.floor(r() * 2 ** 31);
  for (let i = 0; i + 4 <= size; i += 4096) b.writeUInt32LE((v + i) >>> 0, i);
  return b;
}

async function putUrl(
  url: string,
  headers: Record<string, string> | undefined,
  data: Buffer,
): Promise<string> {
  const res = await fetch(url, {
    method: 'PUT',
    headers: headers ?? {},
    body: data,
    signal: AbortSignal.timeout(60_000),
  });
  if (!res.ok) throw new Error(`PUT presigned → ${res.status} ${(await res.text()).slice(0, 200)}`);
  return res.headers.get('etag') ?? '';
}

/** Sessions whose bytes S3 acknowledged (PUT 200, or CompleteMultipartUpload answered). */
const acknowledged = new Map<string, string>();

async function upload(path: string, size: number, r: () => number, date?: string): Promise<void> {
  const data = body(size, r);
  const s = await api<Session>('POST', '/v1/uploads', { path, size, ...(date ? { date } : {}) });
  if (s.mode === 'single') {
    await putUrl(s.url as string, s.headers, data);
    acknowledged.set(s.uploadId, path);
    bump('upload single');
    return;
  }
  const ps = s.partSize as number;
  const parts: Array<{ partNumber: number; etag: string }> = [];
  for (const p of s.parts ?? []) {
    const slice = data.subarray((p.partNumber - 1) * ps, p.partNumber * ps);
    parts.push({ partNumber: p.partNumber, etag: await putUrl(p.url, undefined, slice) });
  }
  await api('POST', `/v1/uploads/${s.uploadId}/complete`, { parts });
  acknowledged.set(s.uploadId, path);
  bump('upload multipart');
}

// Paths: a bounded set per producer (so overwrites happen), a few tricky names.
const NAMES = [
  'a.bin',
  'b c.txt',
  'plus+sign.dat',
  'pct%41.bin',
  'hash#1.bin',
  'q?.bin',
  'émoji-😀.bin',
  'z.bin',
];
function pathFor(p: number, r: () => number): string {
  const dir = Math.floor(r() * 4);
  const sub = Math.floor(r() * 3);
  const name = NAMES[Math.floor(r() * NAMES.length)] as string;
  return `/soak/p${p}/d${dir}${sub > 0 ? `/s${sub}` : ''}/${name}`;
}
const DATES = ['2024-01-01', '2024-02-29', '2025-12-31'];

async function producer(p: number, deadline: number): Promise<void> {
  const r = rng(1000 + p);
  while (Date.now() < deadline) {
    const x = r();
    try {
      if (x < 0.55) {
        const date = r() < 0.3 ? DATES[Math.floor(r() * DATES.length)] : undefined;
        await upload(pathFor(p, r), 1 + Math.floor(r() * 64 * 1024), r, date);
      } else if (x < 0.57) {
        await upload(pathFor(p, r), 8 * MiB + 4096, r);
      } else if (x < 0.67) {
        const path = pathFor(p, r);
        await api('DELETE', `/v1/files?path=${q(path)}`, undefined, [200, 202, 204, 404]);
        bump('DELETE /v1/files');
      } else if (x < 0.75) {
        const path = `/soak/direct/p${p}/${Math.floor(r() * 20)}.bin`;
        await s3.send(
          new PutObjectCommand({
            Bucket: dev.bucket,
            Key: `${dev.dataPrefix}${path.slice(1)}`,
            Body: body(1 + Math.floor(r() * 8192), r),
          }),
        );
        bump('S3 PutObject (no session)');
      } else if (x < 0.78) {
        // Out of band delete of either an SDK-written or an uploaded path.
        const path = r() < 0.5 ? `/soak/direct/p${p}/${Math.floor(r() * 20)}.bin` : pathFor(p, r);
        await s3.send(
          new DeleteObjectCommand({ Bucket: dev.bucket, Key: `${dev.dataPrefix}${path.slice(1)}` }),
        );
        bump('S3 DeleteObject (no session)');
      } else if (x < 0.81) {
        // Multipart aborted after one part.
        const s = await api<Session>('POST', '/v1/uploads', { path: pathFor(p, r), size: 8 * MiB + 4096 });
        const first = s.parts?.[0];
        if (first) await putUrl(first.url, undefined, body(s.partSize as number, r));
        await api('DELETE', `/v1/uploads/${s.uploadId}`);
        bump('upload aborted (multipart, 1 part sent)');
      } else if (x < 0.83) {
        // Abandoned: opened and never finished; the cleanup job must expire it.
        const big = r() < 0.5;
        const s = await api<Session>('POST', '/v1/uploads', {
          path: pathFor(p, r),
          size: big ? 8 * MiB + 4096 : 1000,
        });
        const first = s.parts?.[0];
        if (big && first) await putUrl(first.url, undefined, body(s.partSize as number, r));
        bump(`upload abandoned (${s.mode})`);
      } else if (x < 0.93) {
        await redeliver(r);
      } else {
        // Readers: resolve and list, to keep the caches busy.
        await api('GET', `/v1/resolve?path=${q(pathFor(p, r))}`, undefined, [200, 404]);
        await api('GET', `/v1/list?path=${q(`/soak/p${p}`)}`, undefined, [200, 404]);
        bump('reads (resolve+list)');
      }
    } catch (err) {
      // An upload refused because its path's state changed meanwhile (e.g. 409) is expected
      // under concurrent deletes; everything else is recorded and reported.
      const msg = (err as Error).message;
      bump('op errors');
      if (errors.length < 30) errors.push(msg);
    }
  }
}

/** Sends an exact duplicate of a row's last put event, or a stale put event older than a tombstone. */
async function redeliver(r: () => number): Promise<void> {
  const { rows } = await db.query<{
    key: string;
    state: string;
    etag: string;
    size: string;
    sequencer: string;
  }>(
    `SELECT key, state, etag, size::text, sequencer FROM objects
      WHERE sequencer IS NOT NULL AND state = $1 ORDER BY md5(path || $2) LIMIT 1`,
    [r() < 0.5 ? 'active' : 'deleted', String(r())],
  );
  const row = rows[0];
  if (!row) return;
  let sequencer = row.sequencer;
  if (row.state === 'deleted') {
    // One below the tombstone's sequencer: an old put delivered late must not resurrect the path.
    const n = BigInt(`0x${row.sequencer}`) - 1n;
    sequencer = n.toString(16).toUpperCase().padStart(16, '0');
  }
  const record = buildS3EventRecord({
    eventName: 'ObjectCreated:Put',
    bucket: dev.bucket,
    key: row.key,
    size: Number(row.size || '1'),
    eTag: row.etag ?? 'd41d8cd98f00b204e9800998ecf8427e',
    sequencer: sequencer.replace(/^0+(?=.{16})/, ''),
  });
  const copies = 1 + Math.floor(r() * 2);
  for (let i = 0; i < copies; i++) {
    await sqs.send(
      new SendMessageCommand({ QueueUrl: queues.ingest, MessageBody: JSON.stringify({ Records: [record] }) }),
    );
  }
  bump(row.state === 'deleted' ? 'stale put event (older than tombstone)' : 'duplicate put event', copies);
}

// ---------------------------------------------------------------- sampling
interface Sample {
  t: number;
  rssMiB: number;
  pg: Record<string, number>;
  idleInTx: number;
  redisKeys: number;
  redisNoTtl: number;
  noTtlExamples: string[];
  ingest: number;
  ingestDlq: number;
  reconcile: number;
  reconcileDlq: number;
}
const samples: Sample[] = [];

async function redisCmd(cmd: unknown[][]): Promise<Array<{ result: unknown }>> {
  if (!dev.redis) return [];
  const res = await fetch(`${dev.redis.url.replace(/\/$/, '')}/pipeline`, {
    method: 'POST',
    headers: { authorization: `Bearer ${dev.redis.token}`, 'content-type': 'application/json' },
    body: JSON.stringify(cmd),
    signal: AbortSignal.timeout(10_000),
  });
  return (await res.json()) as Array<{ result: unknown }>;
}

const depth = (url: string) => queueDepth(sqs, url);

async function sample(): Promise<Sample> {
  const status = await readFile(`/proc/${stackPid}/status`, 'utf8').catch(() => '');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const act = await db.query<{ app: string; state: string; n: number }>(
    `SELECT coalesce(application_name, '') AS app, coalesce(state, '') AS state, count(*)::int AS n
       FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
      GROUP BY 1, 2`,
  );
  const pgc: Record<string, number> = {};
  let idleInTx = 0;
  for (const r of act.rows) {
    pgc[`${r.app}/${r.state}`] = r.n;
    if (r.state.startsWith('idle in transaction')) idleInTx += r.n;
  }
  let keys: string[] = [];
  let cursor = '0';
  do {
    const [res] = await redisCmd([['SCAN', cursor, 'COUNT', '1000']]);
    const [c, ks] = (res?.result ?? ['0', []]) as [string, string[]];
    cursor = c;
    keys = keys.concat(ks);
  } while (cursor !== '0' && dev.redis);
  const ttls = keys.length ? await redisCmd(keys.map((k) => ['TTL', k])) : [];
  const noTtl = keys.filter((_, i) => ttls[i]?.result === -1);
  return {
    t: Math.round((Date.now() - tStart) / 1000),
    rssMiB: Math.round(rssKb / 1024),
    pg: pgc,
    idleInTx,
    redisKeys: keys.length,
    redisNoTtl: noTtl.length,
    noTtlExamples: noTtl.slice(0, 3),
    ingest: await depth(queues.ingest),
    ingestDlq: await depth(queues.ingestDlq),
    reconcile: await depth(queues.reconcile),
    reconcileDlq: await depth(queues.reconcileDlq),
  };
}

// ---------------------------------------------------------------- the soak
const tStart = Date.now();
const deadline = tStart + MINUTES * 60_000;
let sampling = true;
const sampler = (async () => {
  while (sampling) {
    try {
      const s = await sample();
      samples.push(s);
      console.error(
        `t=${s.t}s rss=${s.rssMiB}MiB pg=${JSON.stringify(s.pg)} redis=${s.redisKeys}/${s.redisNoTtl} noTTL ingest=${s.ingest} dlq=${s.ingestDlq} ops=${JSON.stringify(counts)}`,
      );
    } catch (err) {
      console.error(`sample failed: ${(err as Error).message}`);
    }
    await sleep(10_000);
  }
})();

const cliEnv = { ...process.env, STRATA_DEV_JSON: devPath };
const side = (async () => {
  // strata rm every ~40 s, reconcile runs at 1/3 and 2/3 of the soak.
  const r = rng(7);
  const marks = [deadline - (2 * MINUTES * 60_000) / 3, deadline - (MINUTES * 60_000) / 3];
  let nextRm = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (Date.now() >= nextRm) {
      nextRm += 40_000;
      const path = pathFor(Math.floor(r() * PRODUCERS), r);
      try {
        await run('npx', ['strata', 'rm', path], { env: cliEnv, timeout: 60_000 });
        bump('strata rm');
      } catch (err) {
        const e = err as { stderr?: string; message: string };
        if (/not found|no such|404/i.test(e.stderr ?? '')) bump('strata rm (not found)');
        else {
          bump('op errors');
          errors.push(`strata rm: ${(e.stderr ?? e.message).slice(0, 300)}`);
        }
      }
    }
    const mark = marks[0];
    if (mark !== undefined && Date.now() >= mark) {
      marks.shift();
      try {
        const { stdout } = await run('npx', ['strata', 'reconcile', '--wait', '--json'], {
          env: cliEnv,
          timeout: 240_000,
        });
        bump('reconcile runs');
        console.error(`reconcile: ${stdout.trim().slice(0, 400)}`);
      } catch (err) {
        const e = err as { stderr?: string; message: string };
        bump('op errors');
        errors.push(`strata reconcile: ${(e.stderr ?? e.message).slice(0, 300)}`);
      }
    }
    await sleep(1000);
  }
})();

await Promise.all([...Array.from({ length: PRODUCERS }, (_, p) => producer(p, deadline)), side]);
console.error(`producers stopped at ${Math.round((Date.now() - tStart) / 1000)} s; draining`);

// Drained: ingest and reconcile queues empty in three consecutive looks.
let quiet = 0;
const drainStart = Date.now();
while (quiet < 3 && Date.now() - drainStart < 180_000) {
  const d = (await depth(queues.ingest)) + (await depth(queues.reconcile));
  quiet = d === 0 ? quiet + 1 : 0;
  await sleep(1000);
}
// Sessions: every one past its expiry must reach a final state at the next cleanup run.
const pendingSql = `SELECT count(*)::int AS n FROM upload_sessions WHERE state = 'pending' AND expires_at < now()`;
const lastExpiry = Date.now() + EXPIRY_S * 1000;
let stuck = -1;
while (Date.now() < lastExpiry + 3 * SCHEDULE_S * 1000) {
  stuck = (await db.query<{ n: number }>(pendingSql)).rows[0]?.n ?? -1;
  if (stuck === 0 && Date.now() > lastExpiry + SCHEDULE_S * 1000 + 2000) break;
  await sleep(2000);
}
// Cleanup may have produced events (aborted multipart uploads make none): drain once more.
await sleep(2000);
samples.push(await sample());
sampling = false;
await sampler;

// ---------------------------------------------------------------- checks
interface Obj {
  size: number;
  etag: string;
  versionId?: string;
}
const s3Objects = new Map<string, Obj & { lastModified: Date }>();
let token: string | undefined;
do {
  const page = await s3.send(
    new ListObjectsV2Command({ Bucket: dev.bucket, Prefix: dev.dataPrefix, ContinuationToken: token }),
  );
  for (const o of page.Contents ?? []) {
    s3Objects.set(pathForKey(dev.dataPrefix, o.Key as string) ?? `?${o.Key}`, {
      size: o.Size ?? 0,
      etag: (o.ETag ?? '').replace(/"/g, ''),
      lastModified: o.LastModified as Date,
    });
  }
  token = page.NextContinuationToken;
} while (token);

// The index through the API: walk /v1/list from the root.
const indexFiles = new Map<string, Obj>();
const dirs: string[] = [];
async function walk(dir: string): Promise<void> {
  dirs.push(dir);
  let cursor: string | undefined;
  do {
    const page = await api<{
      entries: Array<{ path: string; type: string; size: number; etag?: string; versionId?: string }>;
      nextCursor?: string;
    }>('GET', `/v1/list?path=${q(dir)}&limit=1000${cursor ? `&cursor=${q(cursor)}` : ''}`);
    for (const e of page.entries) {
      if (e.type === 'dir') await walk(e.path);
      else indexFiles.set(e.path, { size: e.size, etag: e.etag ?? '', versionId: e.versionId });
    }
    cursor = page.nextCursor;
  } while (cursor);
}
await walk('/');

interface Check {
  name: string;
  compared: number;
  mismatches: number;
  examples: string[];
}
const checks: Check[] = [];
function compareMaps(name: string, want: Map<string, string>, got: Map<string, string>): void {
  const ex: string[] = [];
  let bad = 0;
  for (const [k, v] of want) {
    const g = got.get(k);
    if (g !== v) {
      bad++;
      if (ex.length < 5) ex.push(`${k}: want ${v}, got ${g ?? 'absent'}`);
    }
  }
  for (const [k, v] of got) {
    if (!want.has(k)) {
      bad++;
      if (ex.length < 5) ex.push(`${k}: want absent, got ${v}`);
    }
  }
  checks.push({ name, compared: Math.max(want.size, got.size), mismatches: bad, examples: ex });
}
const s3View = new Map([...s3Objects].map(([p, o]) => [p, `${o.size}/${o.etag}`]));
compareMaps(
  'index (/v1/list walk) vs S3 ListObjectsV2',
  s3View,
  new Map([...indexFiles].map(([p, o]) => [p, `${o.size}/${o.etag}`])),
);

// versionId: resolve a sample of paths (the local bucket is unversioned: both sides have none).
{
  const dbRows = await db.query<{ path: string; size: string; etag: string; version_id: string | null }>(
    `SELECT path, size::text, etag, version_id FROM objects WHERE state = 'active'`,
  );
  compareMaps(
    'objects table (state active; size, etag, versionId) vs S3',
    new Map([...s3Objects].map(([p, o]) => [p, `${o.size}/${o.etag}/-`])),
    new Map(dbRows.rows.map((r) => [r.path, `${r.size}/${r.etag}/${r.version_id ?? '-'}`])),
  );
}

// Changes replayed from 0.
{
  const state = new Map<string, string>();
  let since = 0;
  let lastSeq = 0;
  let disorder = 0;
  let entries = 0;
  for (;;) {
    const page = await api<{
      changes: Array<{ seq: number; op: string; path: string; etag?: string; size?: number }>;
      nextSince: number;
      latest: number;
    }>('GET', `/v1/changes?since=${since}&limit=1000`);
    for (const c of page.changes) {
      entries++;
      if (c.seq <= lastSeq) disorder++;
      lastSeq = c.seq;
      if (c.op === 'put' || (c.op === 'drift' && c.etag)) state.set(c.path, `${c.size}/${c.etag}`);
      else state.delete(c.path);
    }
    if (page.changes.length === 0 || page.nextSince >= page.latest) break;
    since = page.nextSince;
  }
  compareMaps(`/v1/changes replayed from 0 (${entries} entries) vs S3`, s3View, state);
  checks.push({
    name: '/v1/changes seq strictly increasing',
    compared: entries,
    mismatches: disorder,
    examples: [],
  });
}

// Stats per directory, recursively, vs the S3 listing.
{
  const want = new Map<string, string>();
  const got = new Map<string, string>();
  for (const dir of dirs) {
    let files = 0;
    let bytes = 0;
    const prefix = dir === '/' ? '/' : `${dir}/`;
    for (const [p, o] of s3Objects) {
      if (p.startsWith(prefix)) {
        files++;
        bytes += o.size;
      }
    }
    want.set(dir, `${files} files/${bytes} B`);
    const s = await api<{ files: number; bytes: number }>('GET', `/v1/stats?path=${q(dir)}`);
    got.set(dir, `${s.files} files/${s.bytes} B`);
  }
  compareMaps('/v1/stats per directory vs S3 listing', want, got);
}

// By-date: the day is the upload's date (strata-date metadata) or the object's LastModified (UTC).
{
  const want = new Map<string, string>();
  const perDay = new Map<string, { files: number; bytes: number }>();
  for (const [p, o] of s3Objects) {
    const h = await s3.send(
      new HeadObjectCommand({ Bucket: dev.bucket, Key: `${dev.dataPrefix}${p.slice(1)}` }),
    );
    const day = h.Metadata?.['strata-date'] ?? o.lastModified.toISOString().slice(0, 10);
    want.set(p, day);
    const d = perDay.get(day) ?? { files: 0, bytes: 0 };
    d.files++;
    d.bytes += o.size;
    perDay.set(day, d);
  }
  const got = new Map<string, string>();
  const dates = await api<{ dates: Array<{ date: string; files: number; bytes: number }> }>(
    'GET',
    '/v1/dates',
  );
  for (const d of dates.dates) {
    let cursor: string | undefined;
    do {
      const page = await api<{ entries: Array<{ path: string }>; nextCursor?: string }>(
        'GET',
        `/v1/by-date/${d.date}${cursor ? `?cursor=${q(cursor)}` : ''}`,
      );
      for (const e of page.entries)
        got.set(e.path, got.has(e.path) ? `${got.get(e.path)},${d.date}` : d.date);
      cursor = page.nextCursor;
    } while (cursor);
  }
  compareMaps('/v1/by-date/{day} listings vs objects\u2019 dates', want, got);
  compareMaps(
    '/v1/dates rollups vs objects\u2019 dates',
    new Map([...perDay].map(([d, v]) => [d, `${v.files}/${v.bytes}`])),
    new Map(dates.dates.filter((d) => d.files > 0).map((d) => [d.date, `${d.files}/${d.bytes}`])),
  );
}

// Quota and upload sessions.
{
  const bytesUnderSoak = [...s3Objects]
    .filter(([p]) => p.startsWith('/soak/'))
    .reduce((a, [, o]) => a + o.size, 0);
  const quota = (
    await db.query<{ used: string; reserved: string }>(
      `SELECT used_bytes::text AS used, reserved_bytes::text AS reserved FROM upload_quotas WHERE prefix = '/soak'`,
    )
  ).rows[0];
  const held = (
    await db.query<{ n: string }>(
      `SELECT coalesce(sum(reserved_bytes), 0)::text AS n FROM upload_sessions WHERE '/soak' = ANY(quota_prefixes)`,
    )
  ).rows[0];
  const sessions = await db.query<{ state: string; mode: string; n: number }>(
    `SELECT state, mode, count(*)::int AS n FROM upload_sessions GROUP BY 1, 2 ORDER BY 1, 2`,
  );
  const byState = sessions.rows.map((r) => `${r.state}/${r.mode}=${r.n}`).join(', ');
  const acked = await db.query<{
    id: string;
    path: string;
    state: string;
    created: string;
    settled: string | null;
  }>(
    `SELECT id, path, state, created_at::text AS created, settled_at::text AS settled
       FROM upload_sessions WHERE id = ANY($1) AND state <> 'completed' ORDER BY created_at`,
    [[...acknowledged.keys()]],
  );
  // What became of the path after each such session (the journal), to tell why it did not settle.
  const notCompleted: string[] = [];
  for (const row of acked.rows.slice(0, 5)) {
    const later = await db.query<{ op: string; at: string }>(
      `SELECT op, at::text AS at FROM changes WHERE path = $1 AND at >= $2::timestamptz ORDER BY seq LIMIT 4`,
      [row.path, row.created],
    );
    notCompleted.push(
      `${row.path} ${row.state} (opened ${row.created}; then ${later.rows.map((c) => `${c.op}@${c.at}`).join(', ') || 'no change'})`,
    );
  }
  checks.push({
    name: 'quota used_bytes (/soak) vs bytes in S3 under /soak',
    compared: 1,
    mismatches: Number(quota?.used) === bytesUnderSoak ? 0 : 1,
    examples: [`used ${quota?.used}, S3 ${bytesUnderSoak}`],
  });
  checks.push({
    name: 'quota reserved_bytes vs sum of session reservations',
    compared: 1,
    mismatches: quota?.reserved === held?.n ? 0 : 1,
    examples: [`quota reserved ${quota?.reserved}, sessions hold ${held?.n}`],
  });
  checks.push({
    name: 'uploads acknowledged by S3 whose session is not completed',
    compared: acknowledged.size,
    mismatches: acked.rows.length,
    examples: [`sessions: ${byState}`, ...notCompleted],
  });
  checks.push({
    name: 'sessions pending past expiry after cleanup',
    compared: 1,
    mismatches: stuck,
    examples: [],
  });
  // At rest, past every expiry, no session may still hold a reservation.
  const holding = await db.query<{ state: string; mode: string; n: number; bytes: string }>(
    `SELECT state, mode, count(*)::int AS n, sum(reserved_bytes)::text AS bytes FROM upload_sessions
      WHERE reserved_bytes > 0 GROUP BY 1, 2`,
  );
  checks.push({
    name: 'sessions still holding a quota reservation at rest',
    compared: 1,
    mismatches: holding.rows.reduce((a, r) => a + r.n, 0),
    examples: holding.rows.map((r) => `${r.state}/${r.mode}: ${r.n} sessions, ${r.bytes} B`),
  });
}

// ---------------------------------------------------------------- report
await db.end();
await stopStack();
const out: string[] = [];
out.push(`Soak: ${MINUTES} min, ${PRODUCERS} producers, local stack (npm start), state ${STATE}`);
out.push('');
out.push('| operation | count |', '|---|---:|');
for (const [k, v] of Object.entries(counts).sort()) out.push(`| ${k} | ${v} |`);
out.push('');
out.push('| check | compared | mismatches | detail |', '|---|---:|---:|---|');
for (const c of checks)
  out.push(
    `| ${c.name} | ${c.compared} | ${c.mismatches} | ${c.examples.join('; ').replace(/\|/g, '\\|').slice(0, 300)} |`,
  );
out.push('');
const first = samples[0];
const last = samples[samples.length - 1];
const max = (f: (s: Sample) => number) => Math.max(...samples.map(f));
const conns = (s: Sample) => Object.values(s.pg).reduce((a, b) => a + b, 0);
out.push('| resource (sampled every 10 s) | first | max | at rest (end) |', '|---|---:|---:|---:|');
out.push(
  `| stack process RSS (API + indexer + emulator), MiB | ${first?.rssMiB} | ${max((s) => s.rssMiB)} | ${last?.rssMiB} |`,
);
out.push(
  `| PostgreSQL client connections | ${first && conns(first)} | ${max(conns)} | ${last && conns(last)} |`,
);
out.push(`| … idle in transaction | ${first?.idleInTx} | ${max((s) => s.idleInTx)} | ${last?.idleInTx} |`);
out.push(`| Redis keys | ${first?.redisKeys} | ${max((s) => s.redisKeys)} | ${last?.redisKeys} |`);
out.push(
  `| Redis keys without TTL | ${first?.redisNoTtl} | ${max((s) => s.redisNoTtl)} | ${last?.redisNoTtl} |`,
);
out.push(`| ingest queue depth | ${first?.ingest} | ${max((s) => s.ingest)} | ${last?.ingest} |`);
out.push(`| ingest DLQ depth | ${first?.ingestDlq} | ${max((s) => s.ingestDlq)} | ${last?.ingestDlq} |`);
out.push(
  `| reconcile queue / DLQ depth | ${first?.reconcile} / ${first?.reconcileDlq} | ${max((s) => s.reconcile)} / ${max((s) => s.reconcileDlq)} | ${last?.reconcile} / ${last?.reconcileDlq} |`,
);
out.push('');
out.push(`PostgreSQL connections at rest by application_name/state: ${JSON.stringify(last?.pg)}`);
if (last?.noTtlExamples.length)
  out.push(`Redis keys without TTL at rest, e.g.: ${last.noTtlExamples.join(', ')}`);
if (errors.length) out.push('', `Operation errors (first ${errors.length}):`, ...errors.map((e) => `- ${e}`));
const dlqLines = stackLog
  .filter((l) => /dlq_move|batch_failed|"level":"ERROR"|unhandled/i.test(l))
  .slice(0, 10);
if (dlqLines.length) out.push('', 'Stack log (failures):', ...dlqLines.map((l) => `    ${l.slice(0, 400)}`));
console.log(out.join('\n'));
const bad =
  checks.reduce((a, c) => a + c.mismatches, 0) +
  (last?.idleInTx ?? 0) +
  (last?.redisNoTtl ?? 0) +
  (last?.ingestDlq ?? 0);
process.exit(bad === 0 ? 0 : 1);
