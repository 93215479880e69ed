/**
 * An upload whose body does not match what its URL was issued for — longer, shorter, altered, or
 * sent after the URL expired — is refused by S3 and loses nothing: no object, nothing indexed, the
 * session still open, and the right body then lands. The local stack's S3 (fauxqs) now checks
 * presigned requests as S3 does (local/s3-auth.ts); before, it stored any of these bodies.
 */
import { createHash } from 'node:crypto';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import type { UploadSession } from '../../../functions/core/api-types.ts';
import { NotFoundError } from '../../../functions/core/errors.ts';
import { useLocalStack } from '../../support/local-stack.ts';

const t = useLocalStack('qa-refused');

async function put(s: UploadSession, body: Buffer, headers = s.headers) {
  const res = await request(s.url as string, { method: 'PUT', headers, body });
  return { status: res.statusCode, text: await res.body.text() };
}

describe('uploads S3 refuses', () => {
  it('a longer, shorter or altered body is refused, nothing is indexed, and the right body then lands', async () => {
    // Prepare
    const body = Buffer.from('exactly these bytes');
    const sha256 = createHash('sha256').update(body).digest('hex');
    const s = await t.api.request<UploadSession>('POST', '/v1/uploads', {
      body: { path: '/refused/f.txt', size: body.length, sha256 },
    });
    const altered = Buffer.from(body);
    altered[0] = 'E'.charCodeAt(0);

    // Act + Assess: each refusal names S3's reason.
    const longer = await put(s, Buffer.concat([body, Buffer.from('!')]));
    expect(longer.status).toBe(403);
    expect(longer.text).toContain('<Code>SignatureDoesNotMatch</Code>');
    expect((await put(s, body.subarray(1))).status).toBe(403);
    // The same length with other bytes passes the signature and fails the signed checksum.
    const wrong = await put(s, altered);
    expect(wrong.status).toBe(400);
    expect(wrong.text).toContain('<Code>BadDigest</Code>');
    // Without the signed headers the client was told to send.
    expect((await put(s, body, {})).status).toBe(403);
    await t.stack.drain();
    await expect(t.api.request('GET', '/v1/resolve', { query: { path: '/refused/f.txt' } })).rejects.toThrow(
      NotFoundError,
    );
    const { rows } = await t.stack.pool.query('SELECT state FROM upload_sessions WHERE id = $1', [
      s.uploadId,
    ]);
    expect(rows[0]?.state).toBe('pending');

    // The right body with the same URL lands and is indexed.
    expect((await put(s, body)).status).toBe(200);
    await t.stack.drain();
    const r = await t.api.request<{ size: number; sha256?: string }>('GET', '/v1/resolve', {
      query: { path: '/refused/f.txt' },
    });
    expect(r.size).toBe(body.length);
  });

  it('a presigned read works with a Range, and a tampered one is refused', async () => {
    const body = Buffer.from('0123456789');
    const s = await t.api.request<UploadSession>('POST', '/v1/uploads', {
      body: { path: '/refused/r.bin', size: body.length },
    });
    expect((await put(s, body)).status).toBe(200);
    await t.stack.drain();
    const r = await t.api.request<{ url: string }>('GET', '/v1/resolve', {
      query: { path: '/refused/r.bin', presign: '1' },
    });
    const ranged = await request(r.url, { headers: { range: 'bytes=2-5' } });
    expect(ranged.statusCode).toBe(206);
    expect(await ranged.body.text()).toBe('2345');
    const tampered = await request(r.url.replace('r.bin', 'f.txt'));
    expect(tampered.statusCode).toBe(403);
    await tampered.body.text();
  });
});
