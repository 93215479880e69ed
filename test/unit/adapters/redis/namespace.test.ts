/**
 * Redis key namespaces (review finding: two deployments sharing one Redis read each other's
 * entries) and the keep-alive REST transport, against a small in-memory Upstash-protocol server.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis, RedisGuard } from '../../../../functions/adapters/redis/client.ts';
import { cacheKeys, MetadataCache } from '../../../../functions/adapters/redis/metadata-cache.ts';
import { parseConfig } from '../../../../functions/config.ts';

describe('cache namespace in the server config', () => {
  it('defaults to bucket and data prefix, and STRATA_CACHE_NAMESPACE overrides it', () => {
    expect(parseConfig({ STRATA_BUCKET: 'b1', STRATA_DATA_PREFIX: 'data' }).cacheNamespace).toBe('b1/data/');
    expect(parseConfig({ STRATA_BUCKET: 'b1', STRATA_CACHE_NAMESPACE: 'stage-prod' }).cacheNamespace).toBe(
      'stage-prod',
    );
    expect(() => parseConfig({ STRATA_BUCKET: 'b1', STRATA_CACHE_NAMESPACE: 'has space' })).toThrow(
      /STRATA_CACHE_NAMESPACE/,
    );
  });

  it('puts every key of a deployment under strata:<namespace>:', () => {
    expect(cacheKeys('b1/data/')).toMatchObject({
      resolve: 'strata:b1/data/:r:',
      list: 'strata:b1/data/:l:',
      peers: 'strata:b1/data/:peers',
    });
  });
});

/** Upstash REST protocol subset: POST / with a command array; POST /pipeline with an array of them. */
const store = new Map<string, string>();
const seenAuth: string[] = [];
function exec(cmd: string[]): unknown {
  const [name, ...args] = cmd;
  switch (String(name).toUpperCase()) {
    case 'GET':
      return store.get(args[0] as string) ?? null;
    case 'MGET':
      return args.map((k) => store.get(k) ?? null);
    case 'SET':
      store.set(args[0] as string, args[1] as string);
      return 'OK';
    case 'DEL':
      return args.filter((k) => store.delete(k)).length;
    default:
      throw new Error(`ERR unknown command ${name}`);
  }
}
let server: Server;
let url: string;
beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      seenAuth.push(String(req.headers.authorization));
      const parsed = JSON.parse(body) as string[] | string[][];
      try {
        const out =
          req.url === '/pipeline'
            ? (parsed as string[][]).map((c) => ({ result: exec(c) }))
            : { result: exec(parsed as string[]) };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out));
      } catch (err) {
        res.writeHead(400).end(JSON.stringify({ error: (err as Error).message }));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe('two deployments on one Redis', () => {
  it('never read each other’s cached answers', async () => {
    const redis = createRedis({ url, token: 'tok', timeoutMs: 5000 });
    const guard = new RedisGuard(redis);
    const a = new MetadataCache<{ etag: string }, { entries: unknown[] }>(guard, { namespace: 'stage-a' });
    const b = new MetadataCache<{ etag: string }, { entries: unknown[] }>(guard, { namespace: 'stage-b' });
    await a.setResolve('/x', { etag: 'from-a' });
    a.clearLocal();
    expect((await a.getResolve('/x'))?.value).toEqual({ etag: 'from-a' });
    expect(await b.getResolve('/x')).toBeUndefined();
    expect([...store.keys()].every((k) => k.startsWith('strata:stage-a:'))).toBe(true);
    expect(guard.failures).toBe(0);
    expect(seenAuth.every((h) => h === 'Bearer tok')).toBe(true);
  });

  it('turns a REST error into a guarded failure, not an exception', async () => {
    const guard = new RedisGuard(createRedis({ url, token: 'tok', timeoutMs: 5000 }));
    const r = await guard.run('bogus', (redis) => redis.eval('return 1', [], []));
    expect(r).toBeUndefined();
    expect(guard.failures).toBe(1);
  });
});
