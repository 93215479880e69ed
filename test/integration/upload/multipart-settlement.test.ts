/**
 * The server soak's case, end to end on the local stack (real PostgreSQL, fauxqs S3 and SQS, the
 * indexer fed by S3 events): two multipart uploads of one path and one size, the older abandoned
 * after its first part, the newer completed. The newer upload's event settled the *oldest* open
 * session of that key and size — the abandoned one — so the abandoned session ended `completed`
 * (never expired, its S3 upload never aborted, and a /complete of it answered `completed` without
 * completing it in S3) while the real upload kept its reservation for the 1 h grace.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getQuota, getSession, setQuota } from '../../../functions/adapters/pg/uploads-store.ts';
import type { UploadSession } from '../../../functions/core/api-types.ts';
import { ValidationError } from '../../../functions/core/errors.ts';
import { type LocalStack, startStack } from '../../../local/stack.ts';
import { ApiClient } from '../../../mount-client/api/client.ts';

process.env.POWERTOOLS_METRICS_DISABLED = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';

const MiB = 1024 * 1024;
/** Two parts: 5 MiB (the smallest part S3 takes) and 4 KiB, as the soak's multipart uploads. */
const SIZE = 5 * MiB + 4096;
let dir: string;
let stack: LocalStack;
let api: ApiClient;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strata-mp-settle-'));
  stack = await startStack({
    stateDir: dir,
    apiPort: 0,
    scheduleIntervalMs: 0,
    log: () => {},
    env: {
      STRATA_MULTIPART_THRESHOLD: String(5 * MiB),
      STRATA_MULTIPART_PART_SIZE: String(5 * MiB),
      STRATA_PRESIGN_EXPIRES_SECONDS: '300',
    },
  });
  api = new ApiClient({ apiUrl: stack.dev.apiUrl, token: stack.adminToken });
}, 60_000);

afterAll(async () => {
  await api?.close();
  await stack?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** PUTs part `n` of `body` to its presigned URL; returns the HTTP status and S3's ETag. */
async function putPart(s: UploadSession, body: Buffer, n: number) {
  const part = s.parts?.find((p) => p.partNumber === n);
  if (!part) throw new Error(`session ${s.uploadId} has no URL for part ${n}`);
  const chunk = body.subarray((n - 1) * 5 * MiB, Math.min(body.length, n * 5 * MiB));
  const res = await request(part.url, {
    method: 'PUT',
    body: chunk,
    headers: { 'content-length': String(chunk.length) },
  });
  await res.body.text();
  return { status: res.statusCode, etag: String(res.headers.etag) };
}

async function state(id: string): Promise<string> {
  const s = await getSession(stack.pool, id);
  return `${s?.state}/${s?.reservedBytes}`;
}

describe('two multipart uploads of one path and size', () => {
  it('the completed upload settles, the abandoned one expires and is aborted in S3', async () => {
    // Prepare: the older upload sends its first part and is abandoned; the newer one completes.
    await setQuota(stack.pool, stack.dev.dataPrefix, '/mp', 100 * MiB);
    const body = randomBytes(SIZE);
    const open = () =>
      api.request<UploadSession>('POST', '/v1/uploads', { body: { path: '/mp/f.bin', size: SIZE } });
    const abandoned = await open();
    expect(abandoned).toMatchObject({ mode: 'multipart', partCount: 2 });
    const first = await putPart(abandoned, body, 1);
    expect(first.status).toBe(200);
    const real = await open();
    const etags = [(await putPart(real, body, 1)).etag, (await putPart(real, body, 2)).etag];
    const done = await api.request<{ state: string }>('POST', `/v1/uploads/${real.uploadId}/complete`, {
      body: { parts: etags.map((etag, i) => ({ partNumber: i + 1, etag })) },
    });
    expect(done.state).toBe('completed');

    // Act 1: the real upload's S3 event is indexed.
    await stack.drain();

    // Assess 1: the real upload settled; the abandoned one is still pending and reserved, so its
    // /complete still goes to S3 (which refuses the missing part) instead of answering `completed`.
    expect(await state(real.uploadId)).toBe(`completed/0`);
    expect(await state(abandoned.uploadId)).toBe(`pending/${SIZE}`);
    expect(await getQuota(stack.pool, '/mp')).toMatchObject({ reservedBytes: SIZE, usedBytes: SIZE });
    const early = await api
      .request('POST', `/v1/uploads/${abandoned.uploadId}/complete`, {
        body: { parts: [{ partNumber: 1, etag: first.etag }] },
      })
      .catch((e) => e);
    expect(early).toBeInstanceOf(ValidationError);

    // Act 2: the abandoned session's URLs expire and the cleanup job runs.
    await stack.pool.query(
      `UPDATE upload_sessions SET expires_at = now() - interval '1 minute' WHERE id = $1`,
      [abandoned.uploadId],
    );
    await stack.invoke('uploadCleanup', {});

    // Assess 2: expired, its S3 upload aborted (a part PUT finds no upload), no byte reserved.
    expect(await state(abandoned.uploadId)).toBe('expired/0');
    expect((await putPart(abandoned, body, 2)).status).toBe(404);
    expect(await getQuota(stack.pool, '/mp')).toMatchObject({ reservedBytes: 0, usedBytes: SIZE });
  });
});
