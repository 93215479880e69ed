/**
 * Presigned URLs expire: a multipart part whose URL S3 refuses with 403 gets a fresh URL from
 * GET /v1/uploads/{id}/parts and is sent again; a single PUT gets a new session from POST /v1/uploads. The emulator does not check presigned expiry, so
 * S3 here is a small loopback server that refuses URLs from an older "generation", and the API is an
 * in-memory fake that issues a new generation on every parts request (and counts the calls).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NotFoundError } from '../../../functions/core/errors.ts';
import type { ApiClient } from '../../../mount-client/api/client.ts';
import { scanArguments } from '../../../mount-client/upload/scan.ts';
import { Uploader } from '../../../mount-client/upload/uploader.ts';

const PART = 1024;
const PARTS = 5;
let dir: string;
let server: Server;
let s3Url: string;
/** URLs of a generation below this are "expired". */
let validFrom = 1;
const received = new Map<number, Buffer>();
let refused = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strata-part-expiry-'));
  server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (Number(u.searchParams.get('gen')) < validFrom) {
        refused++;
        res.writeHead(403, { 'content-type': 'application/xml' });
        res.end('<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>');
        return;
      }
      const body = Buffer.concat(chunks);
      received.set(Number(u.searchParams.get('partNumber')), body);
      res.writeHead(200, { etag: `"${createHash('md5').update(body).digest('hex')}"` });
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  s3Url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/bucket/key`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});

/** The API side of one multipart session; every parts request issues a new URL generation. */
function fakeApi() {
  let generation = 0;
  const partsCalls: Array<{ from: number }> = [];
  let completed: Array<{ partNumber: number; etag: string }> | undefined;
  const urls = (from: number) =>
    Array.from({ length: PARTS - from + 1 }, (_, i) => ({
      partNumber: from + i,
      url: `${s3Url}?partNumber=${from + i}&gen=${generation}`,
    }));
  const api = {
    apiUrl: 'http://api.invalid',
    async request(
      method: string,
      path: string,
      options: { query?: Record<string, unknown>; body?: unknown },
    ) {
      if (method === 'GET' && path === '/v1/list') throw new NotFoundError('nothing here');
      if (method === 'POST' && path === '/v1/uploads:batch') {
        return {
          results: [
            {
              index: 0,
              ok: true,
              upload: {
                uploadId: 'u1',
                path: '/x/file.bin',
                mode: 'multipart',
                partSize: PART,
                partCount: PARTS,
                parts: urls(1),
                expiresAt: new Date().toISOString(),
              },
            },
          ],
        };
      }
      if (method === 'GET' && path === '/v1/uploads/u1/parts') {
        generation++;
        const from = Number(options.query?.from);
        partsCalls.push({ from });
        return { uploadId: 'u1', partSize: PART, partCount: PARTS, parts: urls(from) };
      }
      if (method === 'POST' && path === '/v1/uploads/u1/complete') {
        completed = (options.body as { parts: typeof completed }).parts;
        return { uploadId: 'u1', state: 'completed' };
      }
      throw new Error(`unexpected API call ${method} ${path}`);
    },
    async close() {},
  };
  return { api: api as unknown as ApiClient, partsCalls, completed: () => completed };
}

describe('multipart part URL expiry', () => {
  it('a 403 on a part fetches fresh part URLs once and finishes the upload', async () => {
    // Prepare: every URL the session started with is already expired.
    const body = randomBytes(PART * PARTS - 100);
    const file = join(dir, 'file.bin');
    await writeFile(file, body);
    const { api, partsCalls, completed } = fakeApi();
    validFrom = 1;
    refused = 0;
    received.clear();
    const uploader = new Uploader({ api, concurrency: 3 });
    try {
      // Act
      const summary = await uploader.upload((await scanArguments([file], '/x')).files);
      // Assess: uploaded, each part refused once at most, one shared refetch of the window.
      expect(summary.failed, JSON.stringify(summary.results)).toBe(0);
      expect(summary.results[0]).toMatchObject({ status: 'uploaded', mode: 'multipart', partsSent: PARTS });
      expect(refused).toBeGreaterThanOrEqual(1);
      expect(refused).toBeLessThanOrEqual(3); // only the parts in flight when the URLs went stale
      expect(partsCalls).toEqual([{ from: 1 }]);
      expect(Buffer.concat([1, 2, 3, 4, 5].map((n) => received.get(n) as Buffer))).toEqual(body);
      expect(completed()?.map((p) => p.partNumber)).toEqual([1, 2, 3, 4, 5]);
    } finally {
      await uploader.close();
    }
  });

  it('a part still refused with a fresh URL fails the file with S3’s status, without looping', async () => {
    const file = join(dir, 'file2.bin');
    await writeFile(file, randomBytes(PART * PARTS));
    const { api, partsCalls, completed } = fakeApi();
    validFrom = Number.POSITIVE_INFINITY; // nothing is ever accepted (e.g. a revoked credential)
    refused = 0;
    const uploader = new Uploader({ api, concurrency: 2 });
    try {
      const summary = await uploader.upload((await scanArguments([file], '/x')).files);
      expect(summary.failed).toBe(1);
      expect(summary.results[0]?.reason).toMatch(/HTTP 403 \(AccessDenied\)/);
      expect(completed()).toBeUndefined();
      // At most one refetch per part that saw a stale URL: bounded, not a retry loop.
      expect(partsCalls.length).toBeLessThanOrEqual(PARTS);
      expect(refused).toBeLessThanOrEqual(2 * PARTS);
    } finally {
      await uploader.close();
    }
  });
});

/** The API side of single-PUT uploads; every POST /v1/uploads issues a new URL generation. */
function fakeSingleApi() {
  let generation = 0;
  const renewals: Array<{ body: unknown; idempotencyKey?: string }> = [];
  const session = (gen: number) => ({
    uploadId: `s${gen}`,
    path: '/x/small.bin',
    mode: 'single' as const,
    url: `${s3Url}?gen=${gen}`,
    headers: {},
    expiresAt: new Date().toISOString(),
  });
  const api = {
    apiUrl: 'http://api.invalid',
    async request(
      method: string,
      path: string,
      options: { body?: unknown; headers?: Record<string, string> },
    ) {
      if (method === 'GET' && path === '/v1/list') throw new NotFoundError('nothing here');
      if (method === 'POST' && path === '/v1/uploads:batch') {
        return { results: [{ index: 0, ok: true, upload: session(0) }] };
      }
      if (method === 'POST' && path === '/v1/uploads') {
        generation++;
        renewals.push({ body: options.body, idempotencyKey: options.headers?.['idempotency-key'] });
        return session(generation);
      }
      throw new Error(`unexpected API call ${method} ${path}`);
    },
    async close() {},
  };
  return { api: api as unknown as ApiClient, renewals };
}

describe('single PUT URL expiry', () => {
  it('a 403 on a single PUT asks the API for a new session once and sends the bytes again', async () => {
    // Prepare: the URL the batch call handed out is already expired.
    const body = randomBytes(3000);
    const file = join(dir, 'small.bin');
    await writeFile(file, body);
    const { api, renewals } = fakeSingleApi();
    validFrom = 1;
    refused = 0;
    received.clear();
    const uploader = new Uploader({ api, concurrency: 2 });
    try {
      // Act
      const summary = await uploader.upload((await scanArguments([file], '/x')).files);
      // Assess: uploaded with the renewed URL, same path/size/digest asked for, bytes intact.
      expect(summary.failed, JSON.stringify(summary.results)).toBe(0);
      expect(summary.results[0]).toMatchObject({ status: 'uploaded', mode: 'single' });
      expect(refused).toBe(1);
      expect(renewals).toHaveLength(1);
      expect(renewals[0]?.body).toMatchObject({
        path: '/x/small.bin',
        size: body.length,
        sha256: createHash('sha256').update(body).digest('hex'),
      });
      expect(renewals[0]?.idempotencyKey).toMatch(/^[0-9a-f-]{36}$/);
      expect(received.get(0)).toEqual(body);
    } finally {
      await uploader.close();
    }
  });

  it('a renewed URL refused again fails the file with S3’s status after one renewal', async () => {
    const file = join(dir, 'small2.bin');
    await writeFile(file, randomBytes(100));
    const { api, renewals } = fakeSingleApi();
    validFrom = Number.POSITIVE_INFINITY;
    refused = 0;
    const uploader = new Uploader({ api, concurrency: 2 });
    try {
      const summary = await uploader.upload((await scanArguments([file], '/x')).files);
      expect(summary.failed).toBe(1);
      expect(summary.results[0]?.reason).toMatch(/HTTP 403 \(AccessDenied\)/);
      expect(renewals).toHaveLength(1);
      expect(refused).toBe(2);
    } finally {
      await uploader.close();
    }
  });
});
