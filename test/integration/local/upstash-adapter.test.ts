import { Redis } from '@upstash/redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalRedis, startRedisServer } from '../../../local/redis.ts';
import { startUpstashAdapter, type UpstashAdapter } from '../../../local/upstash-adapter.ts';
import { missing } from '../../support/requirements.ts';

const skip = missing('redis-server');

describe.skipIf(skip)('Upstash REST adapter over redis-server, driven by @upstash/redis', () => {
  let server: LocalRedis;
  let adapter: UpstashAdapter;
  let redis: Redis;

  beforeAll(async () => {
    server = process.env.REDIS_URL
      ? { url: process.env.REDIS_URL, stop: async () => {} }
      : await startRedisServer();
    adapter = await startUpstashAdapter({ redisUrl: server.url, token: 'test-token' });
    redis = new Redis({ url: adapter.url, token: adapter.token, retry: false });
    // A shared REDIS_URL may hold other data: every key here lives under a unique prefix.
  });

  afterAll(async () => {
    await adapter?.close();
    await server?.stop();
  });

  const k = (name: string) => `upstash-test:${process.pid}:${name}`;

  it('GET / SET with EX and NX', async () => {
    expect(await redis.set(k('a'), 'hello')).toBe('OK');
    expect(await redis.get(k('a'))).toBe('hello');
    expect(await redis.set(k('a'), 'other', { nx: true })).toBeNull();
    expect(await redis.get(k('a'))).toBe('hello');
    expect(await redis.set(k('ex'), 'v', { ex: 100 })).toBe('OK');
    const ttl = await redis.ttl(k('ex'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(100);
    expect(await redis.get(k('missing'))).toBeNull();
  });

  it('round-trips JSON values and Unicode through base64 encoding', async () => {
    const value = { path: '/a b/🎉 café.txt', size: 3, tags: ['x'] };
    await redis.set(k('json'), value);
    expect(await redis.get(k('json'))).toEqual(value);
  });

  it('MGET, INCR, HSET/HGETALL', async () => {
    await redis.set(k('m1'), 'one');
    await redis.set(k('m2'), 'two');
    expect(await redis.mget(k('m1'), k('nope'), k('m2'))).toEqual(['one', null, 'two']);
    expect(await redis.incr(k('n'))).toBe(1);
    expect(await redis.incr(k('n'))).toBe(2);
    await redis.hset(k('h'), { f1: 'v1', f2: 'v2' });
    expect(await redis.hgetall(k('h'))).toEqual({ f1: 'v1', f2: 'v2' });
  });

  it('SCAN with a match pattern', async () => {
    for (let i = 0; i < 5; i++) await redis.set(k(`scan:${i}`), i);
    const found: string[] = [];
    let cursor: string | number = 0;
    do {
      const [next, keys]: [string | number, string[]] = await redis.scan(cursor, {
        match: k('scan:*'),
        count: 2,
      });
      found.push(...keys);
      cursor = next;
    } while (String(cursor) !== '0');
    expect(new Set(found)).toEqual(new Set([0, 1, 2, 3, 4].map((i) => k(`scan:${i}`))));
  });

  it('EVAL', async () => {
    const result = await redis.eval('return {KEYS[1], ARGV[1], 42}', [k('e')], ['arg']);
    expect(result).toEqual([k('e'), 'arg', 42]);
  });

  it('pipeline, with an error inside that fails only its own command', async () => {
    await redis.set(k('str'), 'text');
    const p = redis.pipeline();
    p.set(k('p1'), 'v');
    p.incr(k('str')); // not an integer
    p.get(k('p1'));
    const results = await p.exec({ keepErrors: true });
    expect(results[0]).toEqual({ result: 'OK', error: undefined });
    expect(results[1]!.error).toMatch(/not an integer/);
    expect(results[2]!.result).toBe('v');
    const strict = redis.pipeline();
    strict.incr(k('str'));
    await expect(strict.exec()).rejects.toThrow(/Command 1 \[ incr \] failed/);
  });

  it('multi/exec runs atomically', async () => {
    const tx = redis.multi();
    tx.set(k('t'), 1);
    tx.incr(k('t'));
    tx.get(k('t'));
    expect(await tx.exec()).toEqual(['OK', 2, 2]);
  });

  it('turns a Redis error into an UpstashError', async () => {
    await redis.set(k('s'), 'x');
    await expect(redis.hgetall(k('s'))).rejects.toThrow(/WRONGTYPE/);
  });

  it('refuses a wrong token with 401', async () => {
    const res = await fetch(adapter.url, {
      method: 'POST',
      headers: { authorization: 'Bearer wrong', 'content-type': 'application/json' },
      body: JSON.stringify(['GET', k('a')]),
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: 'Unauthorized' });
    const bad = new Redis({ url: adapter.url, token: 'wrong', retry: false });
    await expect(bad.get(k('a'))).rejects.toThrow(/Unauthorized/);
  });

  it('serves the path form of commands', async () => {
    const res = await fetch(`${adapter.url}/set/${encodeURIComponent(k('path'))}/a%20b`, {
      headers: { authorization: `Bearer ${adapter.token}` },
    });
    expect(await res.json()).toEqual({ result: 'OK' });
    expect(await redis.get(k('path'))).toBe('a b');
  });
});
