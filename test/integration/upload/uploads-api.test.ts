/**
 * The upload API against the local stack (real PostgreSQL, fauxqs S3): round trips, hostile names,
 * what the presigned URL binds, idempotency, auth, quotas, batch, complete checks, cleanup.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken } from '../../../functions/adapters/pg/tokens.ts';
import { getQuota, setQuota } from '../../../functions/adapters/pg/uploads-store.ts';
import type { UploadSession } from '../../../functions/core/api-types.ts';
import {
  ConflictError,
  ForbiddenError,
  NotFoundError,
  QuotaExceededError,
  ValidationError,
} from '../../../functions/core/errors.ts';
import { type LocalStack, startStack } from '../../../local/stack.ts';
import { ApiClient } from '../../../mount-client/api/client.ts';

const MiB = 1024 * 1024;
let dir: string;
let stack: LocalStack;
let api: ApiClient;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strata-upload-api-'));
  stack = await startStack({
    stateDir: dir,
    apiPort: 0,
    scheduleIntervalMs: 0,
    log: () => {},
    // The emulator takes single PUTs up to 11 MiB: go multipart from 5 MiB (the minimum) so tests stay small.
    env: { STRATA_MULTIPART_THRESHOLD: String(5 * MiB), STRATA_PRESIGN_EXPIRES_SECONDS: '300' },
  });
  api = new ApiClient({ apiUrl: stack.dev.apiUrl, token: stack.adminToken });
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
  await rm(dir, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function put(session: UploadSession, body: Buffer, headers: Record<string, string> = {}) {
  const res = await request(session.url as string, {
    method: 'PUT',
    headers: { ...session.headers, 'content-length': String(body.length), ...headers },
    body,
  });
  await res.body.text();
  return res.statusCode;
}

async function readObject(key: string): Promise<Buffer> {
  const out = await stack.s3.send(new GetObjectCommand({ Bucket: stack.dev.bucket, Key: key }));
  return Buffer.from(await out.Body!.transformToByteArray());
}

async function sessionCount(): Promise<number> {
  const { rows } = await stack.pool.query('SELECT count(*)::int AS n FROM upload_sessions');
  return rows[0].n;
}

describe('POST /v1/uploads', () => {
  it('single PUT round trip, verified by sha256; the URL binds length, type and checksum', async () => {
    const body = randomBytes(100_000);
    const digest = sha(body);
    const s = await api.request<UploadSession>('POST', '/v1/uploads', {
      body: { path: '/single/a.bin', size: body.length, sha256: digest, contentType: 'application/x-test' },
    });
    expect(s.mode).toBe('single');
    const url = new URL(s.url as string);
    expect(url.searchParams.get('X-Amz-SignedHeaders')?.split(';')).toEqual([
      'content-length',
      'content-type',
      'host',
      'x-amz-checksum-sha256',
    ]);
    expect(Number(url.searchParams.get('X-Amz-Expires'))).toBeLessThanOrEqual(300);
    expect(s.headers).toEqual({
      'content-type': 'application/x-test',
      'x-amz-checksum-sha256': Buffer.from(digest, 'hex').toString('base64'),
    });
    expect(await put(s, body)).toBe(200);
    expect(sha(await readObject('data/single/a.bin'))).toBe(digest);
  });

  it('names with spaces, + % # ? unicode (NFD in → NFC path) and emoji work end to end', async () => {
    const names = [
      'a b.txt',
      'x+y.txt',
      '100%.txt',
      'c#d.txt',
      'what?.txt',
      'Cafe\u0301.txt',
      '🚀 launch.txt',
    ];
    for (const name of names) {
      const body = Buffer.from(`content of ${name}`);
      const s = await api.request<UploadSession>('POST', '/v1/uploads', {
        body: { path: `/names/${name}`, size: body.length, sha256: sha(body) },
      });
      expect(s.path).toBe(`/names/${name.normalize('NFC')}`);
      expect(await put(s, body)).toBe(200);
      expect((await readObject(`data/names/${name.normalize('NFC')}`)).equals(body)).toBe(true);
    }
  });

  it('rejects hostile paths and bad sizes/digests with a precise 400 and writes nothing', async () => {
    const before = await sessionCount();
    const cases: Array<[unknown, RegExp]> = [
      [{ path: '/a/../b', size: 1 }, /"\." or "\.\."/],
      [{ path: '/a//b', size: 1 }, /empty segment/],
      [{ path: '/a\u0000b', size: 1 }, /control character/],
      [{ path: `/${'x'.repeat(1100)}`, size: 1 }, /too long/],
      [{ path: '/.by-date/2024-01-01/x', size: 1 }, /reserved/],
      [{ path: 'relative.txt', size: 1 }, /absolute/],
      [{ path: '/ok.txt', size: 0 }, /at least 1 byte/],
      [{ path: '/ok.txt', size: -5 }, /at least 1 byte/],
      [{ path: '/ok.txt', size: 5 * 1024 ** 4 + 1 }, /5 TiB/],
      [{ path: '/ok.txt', size: 1.5 }, /integer/],
      [{ path: '/ok.txt', size: 1, sha256: 'abc' }, /64 hex/],
      [{ path: '/ok.txt', size: 1, extra: true }, /unknown field "extra"/],
    ];
    for (const [body, message] of cases) {
      const err = await api.request('POST', '/v1/uploads', { body }).catch((e) => e);
      expect(err, JSON.stringify(body)).toBeInstanceOf(ValidationError);
      expect((err as Error).message).toMatch(message);
    }
    expect(await sessionCount()).toBe(before);
    const listed = await stack.s3.send(
      new ListObjectsV2Command({ Bucket: stack.dev.bucket, Prefix: 'data/.by-date' }),
    );
    expect(listed.KeyCount ?? 0).toBe(0);
  });

  it('Idempotency-Key: same key and body → same session; different body → 409', async () => {
    const headers = { 'idempotency-key': 'key-1' };
    const a = await api.request<UploadSession>('POST', '/v1/uploads', {
      body: { path: '/idem/a', size: 10 },
      headers,
    });
    // NFD/NFC spelling of the same request is the same request.
    const b = await api.request<UploadSession>('POST', '/v1/uploads', {
      body: { path: '/idem/a', size: 10 },
      headers,
    });
    expect(b.uploadId).toBe(a.uploadId);
    const err = await api
      .request('POST', '/v1/uploads', { body: { path: '/idem/a', size: 11 }, headers })
      .catch((e) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toMatch(/different request/);
  });

  it('enforces the write scope and the token prefixes', async () => {
    const reader = await createToken(stack.pool, { name: 'r', scopes: ['read'] });
    const teamA = await createToken(stack.pool, { name: 'a', scopes: ['write'], prefixes: ['/team-a'] });
    const asReader = new ApiClient({ apiUrl: stack.dev.apiUrl, token: reader.token });
    const asTeamA = new ApiClient({ apiUrl: stack.dev.apiUrl, token: teamA.token });
    try {
      await expect(
        asReader.request('POST', '/v1/uploads', { body: { path: '/team-a/x', size: 1 } }),
      ).rejects.toBeInstanceOf(ForbiddenError);
      await expect(
        asTeamA.request('POST', '/v1/uploads', { body: { path: '/team-b/x', size: 1 } }),
      ).rejects.toBeInstanceOf(NotFoundError);
      const ok = await asTeamA.request<UploadSession>('POST', '/v1/uploads', {
        body: { path: '/team-a/x', size: 1 },
      });
      expect(ok.mode).toBe('single');
      // Another prefix's token cannot see, abort or complete the session either.
      const teamB = await createToken(stack.pool, { name: 'b', scopes: ['write'], prefixes: ['/team-b'] });
      const asTeamB = new ApiClient({ apiUrl: stack.dev.apiUrl, token: teamB.token });
      await expect(asTeamB.request('DELETE', `/v1/uploads/${ok.uploadId}`)).rejects.toBeInstanceOf(
        NotFoundError,
      );
      await asTeamB.close();
    } finally {
      await asReader.close();
      await asTeamA.close();
    }
  });

  it('quota: reserved at presign, 413 with remaining bytes; a single-PUT abort holds it until the URL expires', async () => {
    await setQuota(stack.pool, stack.dev.dataPrefix, '/quota', 100);
    const first = await api.request<UploadSession>('POST', '/v1/uploads', {
      body: { path: '/quota/a', size: 80 },
    });
    const err = await api
      .request('POST', '/v1/uploads', { body: { path: '/quota/b', size: 30 } })
      .catch((e) => e);
    expect(err).toBeInstanceOf(QuotaExceededError);
    expect((err as QuotaExceededError).remainingBytes).toBe(20);
    await api.request('DELETE', `/v1/uploads/${first.uploadId}`);
    // The URL is still valid (S3 cannot revoke it), so the bytes stay reserved.
    expect((await getQuota(stack.pool, '/quota'))?.reservedBytes).toBe(80);
    await expect(
      api.request('POST', '/v1/uploads', { body: { path: '/quota/b', size: 30 } }),
    ).rejects.toBeInstanceOf(QuotaExceededError);
    // Once the URL has expired the cleanup job gives the reservation back.
    await stack.pool.query(
      `UPDATE upload_sessions SET expires_at = now() - interval '1 second' WHERE id = $1`,
      [first.uploadId],
    );
    const cleaned = (await stack.invoke('uploadCleanup', {})) as { abortedReleased: number };
    expect(cleaned.abortedReleased).toBe(1);
    expect((await getQuota(stack.pool, '/quota'))?.reservedBytes).toBe(0);
    await api.request('POST', '/v1/uploads', { body: { path: '/quota/b', size: 30 } });
  });

  it('an object PUT after its single-PUT session was aborted is charged; a multipart abort releases at once', async () => {
    await setQuota(stack.pool, stack.dev.dataPrefix, '/late', 20 * MiB);
    const single = await api.request<UploadSession>('POST', '/v1/uploads', {
      body: { path: '/late/a.txt', size: 3 },
    });
    await api.request('DELETE', `/v1/uploads/${single.uploadId}`);
    expect(await put(single, Buffer.from('abc'))).toBe(200); // the aborted URL still works
    await stack.drain();
    expect(await getQuota(stack.pool, '/late')).toMatchObject({ reservedBytes: 0, usedBytes: 3 });
    // Expiry after the object arrived releases nothing twice.
    await stack.pool.query(
      `UPDATE upload_sessions SET expires_at = now() - interval '1 second' WHERE id = $1`,
      [single.uploadId],
    );
    await stack.invoke('uploadCleanup', {});
    expect(await getQuota(stack.pool, '/late')).toMatchObject({ reservedBytes: 0, usedBytes: 3 });

    const multi = await api.request<UploadSession>('POST', '/v1/uploads', {
      body: { path: '/late/m.bin', size: 11 * MiB },
    });
    expect((await getQuota(stack.pool, '/late'))?.reservedBytes).toBe(11 * MiB);
    await api.request('DELETE', `/v1/uploads/${multi.uploadId}`);
    // Aborted in S3: its part URLs cannot complete an object any more.
    expect((await getQuota(stack.pool, '/late'))?.reservedBytes).toBe(0);
  });

  it('an overwrite gives the replaced bytes back: used is what is stored', async () => {
    await setQuota(stack.pool, stack.dev.dataPrefix, '/over', 1000);
    const upload = async (body: Buffer) => {
      const s = await api.request<UploadSession>('POST', '/v1/uploads', {
        body: { path: '/over/f.bin', size: body.length },
      });
      expect(await put(s, body)).toBe(200);
      await stack.drain();
    };
    await upload(randomBytes(100));
    expect(await getQuota(stack.pool, '/over')).toMatchObject({ reservedBytes: 0, usedBytes: 100 });
    await upload(randomBytes(40));
    expect(await getQuota(stack.pool, '/over')).toMatchObject({ reservedBytes: 0, usedBytes: 40 });
    await upload(randomBytes(300));
    expect(await getQuota(stack.pool, '/over')).toMatchObject({ reservedBytes: 0, usedBytes: 300 });
    await stack.s3.send(new DeleteObjectCommand({ Bucket: stack.dev.bucket, Key: 'data/over/f.bin' }));
    await stack.drain();
    expect(await getQuota(stack.pool, '/over')).toMatchObject({ reservedBytes: 0, usedBytes: 0 });
  });

  it('batch: per-entry results, up to 100 entries', async () => {
    const res = await api.request<{
      results: Array<{
        index: number;
        ok: boolean;
        upload?: UploadSession;
        error?: { code: string; status: number };
      }>;
    }>('POST', '/v1/uploads:batch', {
      body: {
        uploads: [
          { path: '/batch/a', size: 3 },
          { path: '/batch/../x', size: 3 },
          { path: '/batch/b', size: 3 },
        ],
      },
    });
    expect(res.results.map((r) => r.ok)).toEqual([true, false, true]);
    expect(res.results[1]?.error).toMatchObject({ code: 'invalid_path', status: 400 });
    expect(await put(res.results[0]!.upload!, Buffer.from('abc'))).toBe(200);
    const tooMany = Array.from({ length: 101 }, (_, i) => ({ path: `/batch/${i}`, size: 1 }));
    await expect(api.request('POST', '/v1/uploads:batch', { body: { uploads: tooMany } })).rejects.toThrow(
      /at most 100/,
    );
  });

  it('multipart: part URLs bind length; complete checks the part list; more part URLs on demand', async () => {
    const size = 11 * MiB + 123;
    const body = randomBytes(size);
    const s = await api.request<UploadSession>('POST', '/v1/uploads', {
      body: { path: '/multi/m.bin', size },
    });
    expect(s).toMatchObject({ mode: 'multipart', partSize: 8 * MiB, partCount: 2 });
    const u = new URL(s.parts![1]!.url);
    expect(u.searchParams.get('X-Amz-SignedHeaders')).toBe('content-length;host');
    const more = await api.request<{ parts: Array<{ partNumber: number; url: string }> }>(
      'GET',
      `/v1/uploads/${s.uploadId}/parts`,
      { query: { from: 2, count: 5 } },
    );
    expect(more.parts.map((p) => p.partNumber)).toEqual([2]);
    const etags: string[] = [];
    for (const p of s.parts!) {
      const start = (p.partNumber - 1) * 8 * MiB;
      const chunk = body.subarray(start, Math.min(size, start + 8 * MiB));
      const res = await request(p.url, {
        method: 'PUT',
        body: chunk,
        headers: { 'content-length': String(chunk.length) },
      });
      await res.body.text();
      etags.push(String(res.headers.etag));
    }
    const missing = await api
      .request('POST', `/v1/uploads/${s.uploadId}/complete`, {
        body: { parts: [{ partNumber: 1, etag: etags[0] }] },
      })
      .catch((e) => e);
    expect(missing).toBeInstanceOf(ValidationError);
    expect((missing as Error).message).toMatch(/missing part\(s\) 2/);
    const done = await api.request<{ state: string }>('POST', `/v1/uploads/${s.uploadId}/complete`, {
      body: { parts: etags.map((etag, i) => ({ partNumber: i + 1, etag })), sha256: sha(body) },
    });
    expect(done.state).toBe('completed');
    expect(sha(await readObject('data/multi/m.bin'))).toBe(sha(body));
  });

  it('cleanup expires pending sessions, aborts their multipart upload and releases the quota', async () => {
    await setQuota(stack.pool, stack.dev.dataPrefix, '/expire', 100 * MiB);
    const s = await api.request<UploadSession>('POST', '/v1/uploads', {
      body: { path: '/expire/big', size: 20 * MiB },
    });
    // The emulator does not implement ListMultipartUploads: probe the upload with a part PUT instead.
    const partStatus = async () => {
      const res = await request(s.parts![2]!.url, {
        method: 'PUT',
        body: Buffer.alloc(4 * MiB),
        headers: { 'content-length': String(4 * MiB) },
      });
      await res.body.text();
      return res.statusCode;
    };
    expect(await partStatus()).toBe(200);
    await stack.pool.query(
      `UPDATE upload_sessions SET expires_at = now() - interval '1 minute' WHERE id = $1`,
      [s.uploadId],
    );
    await stack.invoke('uploadCleanup', {});
    expect(await partStatus()).toBe(404);
    const { rows: after } = await stack.pool.query('SELECT state FROM upload_sessions WHERE id = $1', [
      s.uploadId,
    ]);
    expect(after[0].state).toBe('expired');
    expect((await getQuota(stack.pool, '/expire'))?.reservedBytes).toBe(0);
    // An expired session cannot be resumed.
    await expect(api.request('GET', `/v1/uploads/${s.uploadId}/parts`)).rejects.toBeInstanceOf(ConflictError);
  });
});
