/**
 * A file and a directory under one name (QA sweep 2). S3 stores `data/x` and `data/x/y` side by
 * side, and the index listed both — a mount then shows the name twice and reaches only one of
 * them. POST /v1/uploads (and each batch entry) now refuses such a path with 409 path_conflict,
 * before any S3 call, and writes no session. Local stack: real PostgreSQL, fauxqs S3.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import type { ListResponse, ResolveResponse, UploadSession } from '../../../functions/core/api-types.ts';
import { ConflictError } from '../../../functions/core/errors.ts';
import { BUCKET, DATA_PREFIX } from '../../../local/stack.ts';
import { useLocalStack } from '../../support/local-stack.ts';

const t = useLocalStack('qa-clash');

async function upload(path: string, body: string): Promise<void> {
  const s = await t.api.request<UploadSession>('POST', '/v1/uploads', { body: { path, size: body.length } });
  const res = await request(s.url as string, { method: 'PUT', headers: s.headers, body });
  await res.body.text();
  expect(res.statusCode).toBe(200);
}

async function sessions(): Promise<number> {
  const { rows } = await t.stack.pool.query('SELECT count(*)::int AS n FROM upload_sessions');
  return rows[0].n;
}

describe('file / directory name clashes', () => {
  it('refuses a file where a directory is, and beneath a file, with 409 and no session', async () => {
    await upload('/c/dir/inner.txt', 'in');
    await upload('/c/file.txt', 'f');
    await t.stack.drain();
    const before = await sessions();
    const asDir = t.api.request('POST', '/v1/uploads', { body: { path: '/c/dir', size: 1 } });
    await expect(asDir).rejects.toThrow(ConflictError);
    await expect(asDir).rejects.toThrow(/\/c\/dir is a directory/);
    const under = t.api.request('POST', '/v1/uploads', { body: { path: '/c/file.txt/x', size: 1 } });
    await expect(under).rejects.toThrow(/\/c\/file.txt is a file/);
    expect(await sessions()).toBe(before);
    // An overwrite of the file and a sibling are fine.
    await upload('/c/file.txt', 'g');
    await upload('/c/dir2', 'ok');
  });

  it('refuses clashing batch entries alone, including two entries of the same batch', async () => {
    const r = await t.api.request<{
      results: Array<{ ok: boolean; error?: { code: string; status: number } }>;
    }>('POST', '/v1/uploads:batch', {
      body: {
        uploads: [
          { path: '/c/dir', size: 1 },
          { path: '/b/new', size: 1 },
          { path: '/b/new/child', size: 1 },
          { path: '/b/other', size: 1 },
        ],
      },
    });
    expect(r.results.map((x) => x.ok)).toEqual([false, true, false, true]);
    expect(r.results[0]?.error).toMatchObject({ code: 'path_conflict', status: 409 });
    expect(r.results[2]?.error).toMatchObject({ code: 'path_conflict', status: 409 });
  });

  it('resolve of a file that keys written straight to S3 also made a directory says so (a mount shows the directory)', async () => {
    // Prepare: only S3 itself can make this clash now; the index follows its events.
    for (const key of ['s3/x', 's3/x/y.txt', 's3/plain']) {
      await t.stack.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${DATA_PREFIX}${key}`, Body: key }));
    }
    await t.stack.drain();
    // Act
    const x = await t.api.request<ResolveResponse>('GET', '/v1/resolve', { query: { path: '/s3/x' } });
    const plain = await t.api.request<ResolveResponse>('GET', '/v1/resolve', {
      query: { path: '/s3/plain' },
    });
    const under = await t.api.request<ListResponse>('GET', '/v1/list', { query: { path: '/s3/x' } });
    // Assess: the file stays resolvable (strata cat reads it), flagged; a plain file is not.
    expect(x).toMatchObject({ type: 'file', size: 4, alsoDirectory: true });
    expect(plain.type).toBe('file');
    expect(plain.alsoDirectory).toBeUndefined();
    expect(under.entries.map((e) => e.name)).toEqual(['y.txt']);
    // Deleting the keys beneath ends the clash: the flag goes with them.
    await t.api.request('DELETE', '/v1/files', { query: { path: '/s3/x/y.txt' } });
    await t.stack.drain();
    const after = await t.api.request<ResolveResponse>('GET', '/v1/resolve', { query: { path: '/s3/x' } });
    expect(after.alsoDirectory).toBeUndefined();
  });
});
