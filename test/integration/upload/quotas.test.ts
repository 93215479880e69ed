/**
 * Quota administration against the local stack: PUT/GET /v1/quotas (admin scope) and
 * `strata quota set|list` through the real CLI, with the quota then enforced at presign.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken } from '../../../functions/adapters/pg/tokens.ts';
import {
  ForbiddenError,
  NotFoundError,
  QuotaExceededError,
  ValidationError,
} from '../../../functions/core/errors.ts';
import { type LocalStack, startStack } from '../../../local/stack.ts';
import { ApiClient } from '../../../mount-client/api/client.ts';

const run = promisify(execFile);
let dir: string;
let stack: LocalStack;
let api: ApiClient;

interface QuotaView {
  prefix: string;
  limitBytes: number;
  reservedBytes: number;
  usedBytes: number;
  remainingBytes: number;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strata-upload-quotas-'));
  stack = await startStack({
    stateDir: dir,
    apiPort: 0,
    scheduleIntervalMs: 0,
    events: false,
    log: () => {},
  });
  api = new ApiClient({ apiUrl: stack.dev.apiUrl, token: stack.adminToken });
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
  await rm(dir, { recursive: true, force: true });
});

function cli(...args: string[]) {
  const env = { ...process.env, STRATA_API_URL: stack.dev.apiUrl, STRATA_TOKEN: stack.adminToken };
  return run(
    process.execPath,
    ['--import', 'tsx', join(process.cwd(), 'mount-client/cli/main.ts'), ...args],
    {
      env,
    },
  );
}

describe('quota administration', () => {
  it('PUT /v1/quotas sets a quota (NFC, trailing slash ignored) that presign enforces; GET lists it', async () => {
    const set = await api.request<QuotaView>('PUT', '/v1/quotas', {
      body: { prefix: '/Cafe\u0301/', bytes: 100 },
    });
    expect(set).toEqual({
      prefix: '/Café',
      limitBytes: 100,
      reservedBytes: 0,
      usedBytes: 0,
      remainingBytes: 100,
    });

    await api.request('POST', '/v1/uploads', { body: { path: '/Café/a.bin', size: 60 } });
    const over = await api
      .request('POST', '/v1/uploads', { body: { path: '/Café/b.bin', size: 50 } })
      .catch((e) => e);
    expect(over).toBeInstanceOf(QuotaExceededError);
    expect((over as QuotaExceededError).remainingBytes).toBe(40);

    // Raising the limit keeps the reservation and lets the upload through.
    const raised = await api.request<QuotaView>('PUT', '/v1/quotas', {
      body: { prefix: '/Café', bytes: 200 },
    });
    expect(raised).toMatchObject({ limitBytes: 200, reservedBytes: 60, remainingBytes: 140 });
    await api.request('POST', '/v1/uploads', { body: { path: '/Café/b.bin', size: 50 } });
    const { quotas } = await api.request<{ quotas: QuotaView[] }>('GET', '/v1/quotas');
    expect(quotas.find((q) => q.prefix === '/Café')).toMatchObject({
      reservedBytes: 110,
      remainingBytes: 90,
    });
  });

  it('rejects bad bodies with a precise 400 and changes nothing', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ prefix: '/x', bytes: -1 }, /bytes must be a whole number/],
      [{ prefix: '/x', bytes: 1.5 }, /bytes must be a whole number/],
      [{ prefix: '/x', bytes: '10' }, /bytes must be a whole number/],
      [{ prefix: '/a/../b', bytes: 1 }, /"\." or "\.\."/],
      [{ prefix: 'relative', bytes: 1 }, /absolute/],
      [{ bytes: 1 }, /prefix must be a directory path/],
      [{ prefix: '/x', bytes: 1, limit: 2 }, /unknown field "limit"/],
    ];
    for (const [body, message] of cases) {
      const err = await api.request('PUT', '/v1/quotas', { body }).catch((e) => e);
      expect(err, JSON.stringify(body)).toBeInstanceOf(ValidationError);
      expect((err as Error).message).toMatch(message);
    }
    const { quotas } = await api.request<{ quotas: QuotaView[] }>('GET', '/v1/quotas');
    expect(quotas.map((q) => q.prefix)).not.toContain('/x');
  });

  it('needs the admin scope; a prefix-limited admin sees and sets only its own quotas', async () => {
    const writer = await createToken(stack.pool, { name: 'w', scopes: ['write'] });
    const teamAdmin = await createToken(stack.pool, { name: 'ta', scopes: ['admin'], prefixes: ['/team-a'] });
    const asWriter = new ApiClient({ apiUrl: stack.dev.apiUrl, token: writer.token });
    const asTeamAdmin = new ApiClient({ apiUrl: stack.dev.apiUrl, token: teamAdmin.token });
    try {
      await expect(asWriter.request('GET', '/v1/quotas')).rejects.toBeInstanceOf(ForbiddenError);
      await expect(
        asWriter.request('PUT', '/v1/quotas', { body: { prefix: '/team-a', bytes: 1 } }),
      ).rejects.toBeInstanceOf(ForbiddenError);
      await expect(
        asTeamAdmin.request('PUT', '/v1/quotas', { body: { prefix: '/team-b', bytes: 1 } }),
      ).rejects.toBeInstanceOf(NotFoundError);
      await asTeamAdmin.request('PUT', '/v1/quotas', { body: { prefix: '/team-a/raw', bytes: 5 } });
      const { quotas } = await asTeamAdmin.request<{ quotas: QuotaView[] }>('GET', '/v1/quotas');
      expect(quotas.map((q) => q.prefix)).toEqual(['/team-a/raw']);
    } finally {
      await asWriter.close();
      await asTeamAdmin.close();
    }
  });

  it('`strata quota set|list` with --json, human output and --help', async () => {
    const set = JSON.parse((await cli('quota', 'set', '/cli', '1.5KiB', '--json')).stdout) as QuotaView;
    expect(set).toMatchObject({ prefix: '/cli', limitBytes: 1536, remainingBytes: 1536 });
    const listed = JSON.parse((await cli('quota', 'list', '--json')).stdout) as QuotaView[];
    expect(listed.find((q) => q.prefix === '/cli')).toMatchObject({ limitBytes: 1536 });
    expect((await cli('quota', 'list')).stdout).toMatch(/^\/cli {2}limit 1\.5 KiB {2}used 0 B/m);
    expect((await cli('quota', 'set', '--help')).stdout).toMatch(/<prefix>.*\n[\s\S]*500GiB/);
    const bad = await cli('quota', 'set', '/cli', 'lots').catch((e: { code: number; stderr: string }) => e);
    expect(bad).toMatchObject({ code: 1 });
    expect((bad as { stderr: string }).stderr).toMatch(/invalid size "lots"/);
  });
});
