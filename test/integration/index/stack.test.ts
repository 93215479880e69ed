/**
 * The index through the local stack: plain S3 PutObject → synthesized S3 event → SQS → indexer →
 * PostgreSQL → query API over HTTP. Also the auth matrix, DLQ for malformed messages, and Redis
 * stopped mid-test.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken } from '../../../functions/adapters/pg/tokens.ts';
import type { ByDateResponse, ListResponse, ResolveResponse } from '../../../functions/core/api-types.ts';
import { type LocalRedis, startRedisServer } from '../../../local/redis.ts';
import { BUCKET, DATA_PREFIX, type LocalStack, startStack } from '../../../local/stack.ts';
import { missing } from '../../support/requirements.ts';

const run = promisify(execFile);

const noRedis = missing('redis-server');
let dir: string;
let stack: LocalStack;
let redis: LocalRedis | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strata-index-stack-'));
  if (!noRedis) redis = await startRedisServer();
  stack = await startStack({
    stateDir: dir,
    apiPort: 0,
    scheduleIntervalMs: 0,
    log: () => {},
    redis: redis ? { url: redis.url } : 'off',
    visibilityTimeoutSeconds: 1,
    env: { POWERTOOLS_METRICS_DISABLED: 'true', POWERTOOLS_LOG_LEVEL: 'SILENT', STRATA_LOG_LEVEL: 'SILENT' },
  });
});

afterAll(async () => {
  await stack?.stop();
  await redis?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function api<T>(
  method: string,
  path: string,
  query: Record<string, string> = {},
  token = stack.adminToken,
  body?: unknown,
) {
  const url = new URL(stack.dev.apiUrl + path);
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await request(url, {
    method: method as 'GET',
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: (text ? JSON.parse(text) : undefined) as T };
}

async function put(path: string, body: string) {
  await stack.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: DATA_PREFIX + path.slice(1), Body: body }));
}

const tricky = [
  '/t/a b.txt',
  '/t/plus+sign',
  '/t/100%',
  '/t/hash#tag',
  '/t/q?x',
  '/t/émoji 🙂.bin',
  '/t/Zed',
  '/t/sub/deep.txt',
];

describe('index through the local stack', () => {
  it('upload → resolvable; list and by-date correct for tricky names', async () => {
    const firstDay = new Date().toISOString().slice(0, 10);
    for (const [i, p] of tricky.entries()) await put(p, 'x'.repeat(i + 1));
    await stack.drain();
    // Each object is filed under the UTC day of its S3 event. A run that crosses midnight UTC puts
    // some of them on the next day, so the days come from the index, not from the clock afterwards
    // (which listed an empty day then); each must be a day the test ran on.
    const lastDay = new Date().toISOString().slice(0, 10);
    const byDay = new Map<string, string[]>();
    for (const [i, p] of tricky.entries()) {
      const r = await api<ResolveResponse>('GET', '/v1/resolve', { path: p });
      expect(r.status, p).toBe(200);
      expect(r.body).toMatchObject({ path: p, type: 'file', size: i + 1, state: 'active' });
      const day = r.body.date as string;
      expect([firstDay, lastDay], p).toContain(day);
      byDay.set(day, [...(byDay.get(day) ?? []), p]);
    }
    const names: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await api<ListResponse>('GET', '/v1/list', {
        path: '/t',
        limit: '3',
        ...(cursor ? { cursor } : {}),
      });
      expect(page.status).toBe(200);
      names.push(...page.body.entries.map((e) => e.name));
      cursor = page.body.nextCursor;
    } while (cursor);
    const expected = tricky.map((p) => p.split('/')[2] as string).map((n) => (n === 'sub' ? 'sub' : n));
    const byteSorted = [...new Set(expected)].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect(names).toEqual(byteSorted);
    for (const [day, paths] of byDay) {
      const byDate = await api<ByDateResponse>('GET', `/v1/by-date/${day}`);
      expect(byDate.body.entries.map((e) => e.path).sort()).toEqual([...paths].sort());
    }
  });

  it('overwrite → new etag served; delete → 404', async () => {
    await put('/o/file', 'one');
    await stack.drain();
    const first = await api<ResolveResponse>('GET', '/v1/resolve', { path: '/o/file' });
    await put('/o/file', 'two!');
    await stack.drain();
    const second = await api<ResolveResponse>('GET', '/v1/resolve', { path: '/o/file' });
    expect(second.body.etag).not.toBe(first.body.etag);
    expect(second.body.size).toBe(4);
    const del = await api('DELETE', '/v1/files', { path: '/o/file' });
    expect(del.status).toBe(202);
    await stack.drain();
    expect((await api('GET', '/v1/resolve', { path: '/o/file' })).status).toBe(404);
    expect((await api('GET', '/v1/list', { path: '/o' })).status).toBe(404);
  });

  it('presigned GET serves ranges of the resolved object', async () => {
    await put('/p/data.bin', '0123456789');
    await stack.drain();
    const r = await api<ResolveResponse>('GET', '/v1/resolve', { path: '/p/data.bin', presign: '1' });
    expect(r.body.url).toBeTruthy();
    const got = await request(r.body.url as string, {
      headers: { range: 'bytes=2-5', 'if-match': `"${r.body.etag}"` },
    });
    expect(got.statusCode).toBe(206);
    expect(await got.body.text()).toBe('2345');
  });

  it('auth matrix: no token 401, wrong scope 403, outside prefix 404, revoked/expired 401', async () => {
    await put('/team-a/x.txt', 'a');
    await put('/team-b/y.txt', 'b');
    await stack.drain();
    const a = await createToken(stack.pool, { name: 'a', scopes: ['read'], prefixes: ['/team-a/'] });
    expect((await api('GET', '/v1/resolve', { path: '/team-a/x.txt' }, '')).status).toBe(401);
    expect((await api('GET', '/v1/resolve', { path: '/team-a/x.txt' }, a.token)).status).toBe(200);
    expect((await api('DELETE', '/v1/files', { path: '/team-a/x.txt' }, a.token)).status).toBe(403);
    const outside = await api<{ error: { message: string } }>(
      'GET',
      '/v1/resolve',
      { path: '/team-b/y.txt' },
      a.token,
    );
    expect(outside.status).toBe(404);
    const root = await api<ListResponse>('GET', '/v1/list', { path: '/' }, a.token);
    expect(root.body.entries.map((e) => e.name)).toEqual(['team-a']);
    const revoked = await api<{ id: string; token: string }>('POST', '/v1/tokens', {}, stack.adminToken, {
      name: 'tmp',
      scopes: ['read'],
    });
    expect(revoked.status).toBe(201);
    expect((await api('GET', '/v1/dates', {}, revoked.body.token)).status).toBe(200);
    expect((await api('DELETE', `/v1/tokens/${revoked.body.id}`)).status).toBe(200);
    expect((await api('GET', '/v1/dates', {}, revoked.body.token)).status).toBe(401);
    const expired = await createToken(stack.pool, {
      name: 'old',
      scopes: ['read'],
      expiresAt: new Date(Date.now() - 1000),
    });
    expect((await api('GET', '/v1/dates', {}, expired.token)).status).toBe(401);
  });

  it('a malformed message goes to the DLQ after retries', async () => {
    await stack.sqs.send(
      new SendMessageCommand({ QueueUrl: stack.queues.ingest, MessageBody: 'not json at all' }),
    );
    const deadline = Date.now() + 60_000;
    let inDlq = 0;
    while (Date.now() < deadline) {
      const attrs = await stack.sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl: stack.queues.ingestDlq,
          AttributeNames: ['ApproximateNumberOfMessages'],
        }),
      );
      inDlq = Number(attrs.Attributes?.ApproximateNumberOfMessages ?? 0);
      if (inDlq > 0) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(inDlq).toBe(1);
  });

  it.skipIf(noRedis)('Redis stopped mid-test → the API still answers correctly', async () => {
    await put('/r/one', '1');
    await stack.drain();
    expect((await api('GET', '/v1/resolve', { path: '/r/one' })).status).toBe(200);
    await redis?.stop();
    await put('/r/one', '22');
    await put('/r/two', '2');
    await stack.drain();
    const one = await api<ResolveResponse>('GET', '/v1/resolve', { path: '/r/one' });
    expect(one).toMatchObject({ status: 200, body: { size: 2 } });
    const list = await api<ListResponse>('GET', '/v1/list', { path: '/r' });
    expect(list.body.entries.map((e) => e.name)).toEqual(['one', 'two']);
  });
});

describe('CLI ls / stat / cat / rm / token', () => {
  const cli = async (...args: string[]) => {
    const env = {
      ...process.env,
      STRATA_API_URL: stack.dev.apiUrl,
      STRATA_TOKEN: stack.adminToken,
      STRATA_DEV_JSON: '/nonexistent',
    };
    try {
      const r = await run(process.execPath, ['bin/strata.js', ...args], { env, encoding: 'utf8' });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };

  it('lists, stats, cats ranges, removes, and manages tokens', async () => {
    await put('/cli/hello world.txt', 'hello, strata');
    await put('/cli/sub/x', 'x');
    await stack.drain();
    expect((await cli('ls', '/cli')).stdout).toBe('hello world.txt\nsub/\n');
    const long = await cli('ls', '-l', '/cli');
    expect(long.stdout).toMatch(/^- +13 B +\d{4}-\d{2}-\d{2} \d{2}:\d{2} +hello world\.txt$/m);
    const json = JSON.parse((await cli('ls', '--json', '/cli')).stdout);
    expect(json.entries.map((e: { name: string }) => e.name)).toEqual(['hello world.txt', 'sub']);
    expect((await cli('stat', '/cli/hello world.txt')).stdout).toMatch(/size +13 \(13 B\)/);
    expect((await cli('cat', '/cli/hello world.txt')).stdout).toBe('hello, strata');
    expect((await cli('cat', '--range', '7-12', '/cli/hello world.txt')).stdout).toBe('strata');
    expect((await cli('cat', '--range', '-6', '/cli/hello world.txt')).stdout).toBe('strata');
    const missingFile = await cli('stat', '/cli/nope');
    expect(missingFile.code).not.toBe(0);
    expect(missingFile.stderr).toMatch(/not found: \/cli\/nope/);
    expect((await cli('rm', '/cli/hello world.txt')).stdout).toMatch(/deleted/);
    await stack.drain();
    expect((await cli('ls', '/cli')).stdout).toBe('sub/\n');
    const created = JSON.parse(
      (
        await cli(
          'token',
          'create',
          '--name',
          'ci',
          '--scope',
          'read',
          '--prefix',
          '/cli',
          '--expires',
          '1h',
          '--json',
        )
      ).stdout,
    );
    expect(created.token).toMatch(/^stk_/);
    expect((await cli('token', 'list')).stdout).toContain(created.id);
    expect((await cli('token', 'revoke', created.id)).stdout).toContain(`revoked ${created.id}`);
    expect((await cli('ls', '--help')).stdout).toMatch(/--long/);
  });
});
