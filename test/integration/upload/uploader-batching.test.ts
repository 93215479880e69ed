/**
 * How the uploader groups small files into /v1/uploads:batch calls: a slow start (16, 32, 64, then
 * 100 per call) so the first PUT waits for a few reads and a small batch, not 100 of each. The API
 * is an in-memory fake that records each batch; S3 is a loopback server that records each PUT.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NotFoundError } from '../../../functions/core/errors.ts';
import type { ApiClient } from '../../../mount-client/api/client.ts';
import { scanDirectory } from '../../../mount-client/upload/scan.ts';
import { Uploader } from '../../../mount-client/upload/uploader.ts';

let dir: string;
let server: Server;
let s3Url: string;
const received = new Map<string, string>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strata-upload-batching-'));
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.set(
        decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname),
        Buffer.concat(chunks).toString(),
      );
      res.writeHead(200, { etag: '"e"' });
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  s3Url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});

function fakeApi() {
  const batches: number[] = [];
  const api = {
    apiUrl: 'http://api.invalid',
    async request(method: string, path: string, options: { body?: unknown }) {
      if (method === 'GET' && path === '/v1/list') throw new NotFoundError('new target');
      if (method === 'POST' && path === '/v1/uploads:batch') {
        const uploads = (options.body as { uploads: Array<{ path: string }> }).uploads;
        batches.push(uploads.length);
        return {
          results: uploads.map((u, index) => ({
            index,
            ok: true,
            upload: {
              uploadId: `u-${u.path}`,
              path: u.path,
              mode: 'single',
              url: `${s3Url}${encodeURI(u.path)}`,
              headers: {},
              expiresAt: new Date().toISOString(),
            },
          })),
        };
      }
      throw new Error(`unexpected API call ${method} ${path}`);
    },
    async close() {},
  } as unknown as ApiClient;
  return { api, batches };
}

describe('small-file batching', () => {
  it('slow start: batches of 16, 32, 64, then 100; every file PUT once with its bytes', async () => {
    // Prepare: 300 small files and an API that presigns each entry to the loopback S3.
    const src = join(dir, 'src');
    await mkdir(src);
    for (let i = 0; i < 300; i++)
      await writeFile(join(src, `f${String(i).padStart(3, '0')}.txt`), `file ${i}`);
    const { api, batches } = fakeApi();
    const uploader = new Uploader({ api, concurrency: 4 });
    try {
      // Act
      const summary = await uploader.upload((await scanDirectory(src, '/b')).files);
      // Assess
      expect(summary.uploaded).toBe(300);
      expect([...batches].sort((a, b) => a - b)).toEqual([16, 32, 64, 88, 100]);
      expect(received.size).toBe(300);
      expect(received.get('/b/f007.txt')).toBe('file 7');
    } finally {
      await uploader.close();
    }
  });

  it('holds at most the memory budget of small-file bytes; files beyond it are read again for the PUT', async () => {
    const src = join(dir, 'budget');
    await mkdir(src);
    for (let i = 0; i < 40; i++) await writeFile(join(src, `g${i}.txt`), `${i}`.padEnd(100, '.'));
    const { api } = fakeApi();
    const uploader = new Uploader({ api, concurrency: 4, memoryBudgetBytes: 250 });
    const held = () => (uploader as unknown as { heldBytes: number }).heldBytes;
    let peak = 0;
    const timer = setInterval(() => {
      peak = Math.max(peak, held());
    }, 1);
    try {
      const summary = await uploader.upload((await scanDirectory(src, '/m')).files);
      expect(summary.uploaded).toBe(40);
      for (let i = 0; i < 40; i++) expect(received.get(`/m/g${i}.txt`)).toBe(`${i}`.padEnd(100, '.'));
      expect(peak).toBeLessThanOrEqual(250);
      expect(held()).toBe(0); // everything given back
    } finally {
      clearInterval(timer);
      await uploader.close();
    }
  });
});
