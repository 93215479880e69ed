/**
 * A mount whose token is revoked while it runs (real FUSE, real local stack): the change poller
 * gets 401 every second and every uncached lookup fails with EACCES. That is ONE log line naming
 * the token problem and the fix, then quiet — not "change feed poll failed; retrying" every second
 * for as long as the mount runs, nor a line per failed lookup.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { missing } from '../support/requirements.ts';
import { type Backend, startBackend } from './support/backend.ts';
import { type MountProcess, startMount } from './support/mount-process.ts';

const skip = missing('fuse');
const run = promisify(execFile);

describe.skipIf(skip)('a mount whose token is revoked (real FUSE)', () => {
  let backend: Backend;
  let root: string;
  let mnt: string;
  let mount: MountProcess | undefined;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'strata-token-revoked-'));
    mnt = join(root, 'mnt');
    mkdirSync(mnt);
    backend = await startBackend();
    await backend.put('/data/a.txt', Buffer.from('hello'));
    await backend.put('/other/b.txt', Buffer.from('elsewhere'));
  });

  afterAll(async () => {
    await mount?.kill();
    await run('fusermount', ['-uz', mnt]).catch(() => undefined);
    await backend?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('says once that the token was refused and how to fix it, then stays quiet', async () => {
    // Prepare: a read token of its own, and a mount using it that has seen /data
    const admin = { authorization: `Bearer ${backend.token}`, 'content-type': 'application/json' };
    const created = await fetch(`${backend.apiUrl}/v1/tokens`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ name: 'mount-under-test', scopes: ['read'] }),
    });
    expect(created.status).toBe(201);
    const { id, token } = (await created.json()) as { id: string; token: string };
    mount = await startMount({ ...backend, token }, mnt, join(root, 'cache'));
    const m = mount;
    expect(await readFile(join(mnt, 'data/a.txt'), 'utf8')).toBe('hello');

    // Act: revoke it (the API forgets it at once), then look up paths the mount has not cached
    const revoked = await fetch(`${backend.apiUrl}/v1/tokens/${id}`, { method: 'DELETE', headers: admin });
    expect(revoked.status).toBe(200);
    const tokenLines = () => m.log.filter((l) => l.includes('rejects this mount'));
    await vi.waitFor(() => expect(tokenLines().length).toBeGreaterThan(0), {
      timeout: 30_000,
      interval: 200,
    });
    const errors: string[] = [];
    for (const p of ['other/b.txt', 'other/c.txt', 'other/d/e.txt']) {
      await stat(join(mnt, p)).then(
        () => errors.push('found'),
        (err: NodeJS.ErrnoException) => errors.push(err.code ?? 'none'),
      );
    }
    // Several more refused polls of the change feed (one a second).
    await new Promise((r) => setTimeout(r, 3000));

    // Assess: EACCES for uncached lookups, one line that names the token, the cause and the fix
    expect(errors).toEqual(['EACCES', 'EACCES', 'EACCES']);
    expect(tokenLines()).toHaveLength(1);
    const line = tokenLines()[0] ?? '';
    expect(line).toContain(id);
    expect(line).toContain('revoked');
    expect(line).toContain('strata token create');
    expect(line).not.toContain(token);
    expect(m.log.filter((l) => l.includes('change feed poll failed'))).toEqual([]);
    expect(m.log.filter((l) => /"msg":"(getattr|lookup|readdir|open) failed"/.test(l))).toEqual([]);
    expect(await m.stop()).toBe(0);
    mount = undefined;
  });
});
