/**
 * Review finding (session 5): a token limited to a prefix below a path that is a file AND a
 * directory (`/team-a/x` written straight to S3 next to keys under `/team-a/x/`) could not reach
 * its own prefix: listing `/team-a` skipped `x` (a file outside the token) and resolving
 * `/team-a/x` answered 404, while for every other token listings and mounts show that name as
 * the directory. The way down is now shown as the directory, redacted like any ancestor: nothing
 * of the file (etag, size, the flag) and no rollup of the tree outside the prefix.
 */
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyObjectChanges, type ObjectChange } from '../../../functions/adapters/pg/index-store.ts';
import { withTransaction } from '../../../functions/adapters/pg/pool.ts';
import { createToken } from '../../../functions/adapters/pg/tokens.ts';
import { parseConfig } from '../../../functions/config.ts';
import { resetMetadataCache } from '../../../functions/handlers/http/cache.ts';
import { guardRedis, setDeps } from '../../../functions/handlers/http/deps.ts';
import { handler as query } from '../../../functions/handlers/query.ts';
import { startTestDb, type TestDb } from '../index/db.ts';

process.env.POWERTOOLS_METRICS_DISABLED = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';

let db: TestDb;
let below: string;
let at: string;
const config = parseConfig({
  STRATA_BUCKET: 'b',
  STRATA_DATA_PREFIX: 'data/',
  DATABASE_URL: 'postgres://unused',
});
const when = new Date('2024-05-06T07:08:09Z');

function put(path: string, size: number, etag: string): ObjectChange {
  return { kind: 'put', key: `data${path}`, path, size, etag, sequencer: '1', lastModified: when };
}

beforeAll(async () => {
  db = await startTestDb();
  below = (await createToken(db.pool, { name: 'below', scopes: ['read'], prefixes: ['/team-a/x/y/'] })).token;
  at = (await createToken(db.pool, { name: 'at', scopes: ['read'], prefixes: ['/team-a/x/'] })).token;
  setDeps({ config, pool: db.pool, redis: guardRedis(undefined) });
  resetMetadataCache();
  await withTransaction(db.pool, (c) =>
    applyObjectChanges(
      c,
      [
        put('/team-a/x', 3, 'file-x'),
        put('/team-a/x/y/own.txt', 5, 'own'),
        put('/team-a/x/secret.txt', 700, 's'),
      ],
      { source: 'event' },
    ),
  );
});

afterAll(async () => {
  await db?.stop();
});

async function call(route: string, q: Record<string, string>, token: string) {
  const e = {
    version: '2.0',
    routeKey: route,
    rawPath: route.split(' ')[1],
    headers: { authorization: `Bearer ${token}` },
    queryStringParameters: q,
    requestContext: { requestId: 'r', http: { method: route.split(' ')[0] } },
  } as unknown as APIGatewayProxyEventV2;
  const res = await query(e);
  return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined };
}

describe('a prefix below a file that is also a directory', () => {
  it('is reachable: the ancestor is listed and resolved as a redacted directory', async () => {
    // Act
    const team = await call('GET /v1/list', { path: '/team-a' }, below);
    const x = await call('GET /v1/resolve', { path: '/team-a/x' }, below);
    const inX = await call('GET /v1/list', { path: '/team-a/x' }, below);
    // Assess: the way down, as a directory with nothing of the file or of the tree outside.
    expect(team.status).toBe(200);
    expect(team.body.entries).toEqual([
      { path: '/team-a/x', name: 'x', type: 'dir', size: 0, mtime: new Date(0).toISOString() },
    ]);
    expect(x.status).toBe(200);
    expect(x.body).toMatchObject({
      path: '/team-a/x',
      type: 'dir',
      size: 0,
      mtime: new Date(0).toISOString(),
    });
    expect(x.body.files).toBeUndefined();
    const leaked = JSON.stringify([team.body, x.body]);
    for (const secret of ['file-x', 'alsoDirectory', 'etag', '700', '708', 'secret'])
      expect(leaked).not.toContain(secret);
    expect(inX.body.entries.map((e: { name: string }) => e.name)).toEqual(['y']);
  });

  it('a token that sees the path itself gets the file, flagged, and its parent lists both as listDir does', async () => {
    const x = await call('GET /v1/resolve', { path: '/team-a/x' }, at);
    const team = await call('GET /v1/list', { path: '/team-a' }, at);
    expect(x.body).toMatchObject({ type: 'file', etag: 'file-x', size: 3, alsoDirectory: true });
    expect(team.body.entries).toMatchObject([
      { path: '/team-a/x', type: 'dir', files: 2, size: 705 },
      { path: '/team-a/x', type: 'file', size: 3, etag: 'file-x' },
    ]);
  });
});
