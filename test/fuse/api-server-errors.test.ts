/**
 * A mount whose API answers with server errors (real FUSE, real local stack behind an HTTP proxy
 * the test controls): HTTP 503 with the API's own error body, as when its database is down or a
 * statement timed out. The API is reachable then, so the one outage line must not send the
 * operator to check this node's network ("is unreachable"); it says the API answers with server
 * errors, carries the API's message and request id, and names the API's logs and database.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { missing } from '../support/requirements.ts';
import { type Backend, startBackend } from './support/backend.ts';
import { type MountProcess, startMount } from './support/mount-process.ts';

const skip = missing('fuse');
const run = promisify(execFile);
const SERVER_ERROR = {
  error: {
    code: 'unavailable',
    message:
      'the database did not answer within the statement timeout (STRATA_DB_STATEMENT_TIMEOUT_MS); retry shortly, and quote request id req-503 if it persists',
    requestId: 'req-503',
  },
};

describe.skipIf(skip)('a mount whose API answers 503 (real FUSE)', () => {
  let backend: Backend;
  let proxy: Server;
  let failing = false;
  let root: string;
  let mnt: string;
  let mount: MountProcess | undefined;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'strata-api-5xx-'));
    mnt = join(root, 'mnt');
    mkdirSync(mnt);
    backend = await startBackend();
    await backend.put('/data/a.txt', Buffer.from('hello'));
    await backend.put('/other/b.txt', Buffer.from('elsewhere'));
    const target = new URL(backend.apiUrl);
    // Forwards to the stack's API, or answers every request as the API does when its database fails.
    proxy = createServer((req, res) => {
      if (failing) {
        res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
        res.end(JSON.stringify(SERVER_ERROR));
        return;
      }
      const up = request(
        { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
  });

  afterAll(async () => {
    await mount?.kill();
    await run('fusermount', ['-uz', mnt]).catch(() => undefined);
    proxy?.closeAllConnections();
    await new Promise((r) => (proxy ? proxy.close(r) : r(undefined)));
    await backend?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('says once that the API fails (not that it is unreachable), with its message, then that it answers again', async () => {
    // Prepare: a mount through the proxy that has seen /data
    const port = (proxy.address() as { port: number }).port;
    mount = await startMount({ ...backend, apiUrl: `http://127.0.0.1:${port}` }, mnt, join(root, 'cache'));
    const m = mount;
    expect(await readFile(join(mnt, 'data/a.txt'), 'utf8')).toBe('hello');

    // Act: the API answers 503 to everything; an uncached lookup meanwhile
    failing = true;
    const failLines = () => m.log.filter((l) => l.includes('answers with server errors'));
    await vi.waitFor(() => expect(failLines().length).toBeGreaterThan(0), { timeout: 30_000, interval: 200 });
    const code = await stat(join(mnt, 'other/b.txt')).then(
      () => 'found',
      (err: NodeJS.ErrnoException) => err.code,
    );

    // Assess: EIO; one line with the API's message and request id and where to look
    expect(code).toBe('EIO');
    expect(failLines()).toHaveLength(1);
    expect(failLines()[0]).toContain('req-503');
    expect(failLines()[0]).toContain("the API's logs");
    expect(m.log.filter((l) => l.includes('is unreachable'))).toEqual([]);

    // Act + Assess: the API answers normally again: one recovery line, the path resolves
    failing = false;
    await vi.waitFor(() => expect(m.log.some((l) => l.includes('answers again'))).toBe(true), {
      timeout: 30_000,
      interval: 200,
    });
    expect(await readFile(join(mnt, 'other/b.txt'), 'utf8')).toBe('elsewhere');
    expect(await m.stop()).toBe(0);
    mount = undefined;
  });
});
