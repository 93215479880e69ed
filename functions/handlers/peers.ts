/**
 * Registry of mount-client peers for block sharing (design.md §6).
 *
 * `POST /v1/peers/heartbeat` {id, address, ttlSeconds?} registers or refreshes a peer;
 * `GET /v1/peers` returns the live ones. With Redis: a sorted set scored by expiry plus a hash of
 * addresses, so a peer that stops heartbeating disappears after its TTL without any cleanup job.
 * Without Redis (or while it fails): the `peers` table in PostgreSQL, filtered by last_seen.
 * Both need only the `read` scope — every mount client must be able to join.
 */
import { z } from 'zod';
import { cacheKeys } from '../adapters/redis/metadata-cache.ts';
import type { PeerInfo, PeersResponse } from '../core/api-types.ts';
import { type ApiRequest, httpApi, parseWith } from './http/index.ts';

/** Clients heartbeat every ~10 s; 30 s tolerates two lost heartbeats before a peer is dropped. */
export const DEFAULT_PEER_TTL_SECONDS = 30;
/** Redis keys in the deployment's namespace: a sorted set of peer ids by expiry, and their info. */
function keys(req: ApiRequest): { Z: string; H: string } {
  const z = cacheKeys(req.deps.config.cacheNamespace).peers;
  return { Z: z, H: `${z}:info` };
}

const heartbeatBody = z.object({
  id: z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'id: 1–128 characters of [A-Za-z0-9._:-]'),
  address: z.string().regex(/^[^\s/]+:\d{1,5}$/, 'address must be host:port'),
  ttlSeconds: z.number().int().min(5).max(600).default(DEFAULT_PEER_TTL_SECONDS),
});

async function heartbeat(req: ApiRequest) {
  const body = parseWith(heartbeatBody, req.body ?? {}, 'body');
  const now = Date.now();
  const lastSeen = new Date(now).toISOString();
  const { Z, H } = keys(req);
  const info: PeerInfo = { id: body.id, address: body.address, lastSeen };
  const ok = await req.deps.redis.run('peers.heartbeat', async (r) => {
    const p = r.pipeline();
    p.zadd(Z, { score: now + body.ttlSeconds * 1000, member: body.id });
    p.hset(H, { [body.id]: JSON.stringify(info) });
    p.zremrangebyscore(Z, 0, now);
    return p.exec();
  });
  if (ok === undefined) {
    await req.deps.pool.query(
      `INSERT INTO peers (id, address, last_seen) VALUES ($1, $2, now())
       ON CONFLICT (id) DO UPDATE SET address = EXCLUDED.address, last_seen = now()`,
      [body.id, body.address],
    );
    // Opportunistic pruning keeps the table small without a schedule.
    await req.deps.pool.query("DELETE FROM peers WHERE last_seen < now() - interval '1 hour'");
  }
  return { ...info, ttlSeconds: body.ttlSeconds };
}

async function list(req: ApiRequest): Promise<PeersResponse> {
  const now = Date.now();
  const { Z, H } = keys(req);
  const fromRedis = await req.deps.redis.run('peers.list', async (r) => {
    const ids = await r.zrange<string[]>(Z, now, '+inf', { byScore: true });
    if (ids.length === 0) return [];
    // Without automatic deserialization HMGET answers in field order (an array); accept both shapes.
    const infos = (await r.hmget(H, ...ids)) as unknown;
    return ids.flatMap((id, i) => {
      const raw = Array.isArray(infos) ? infos[i] : (infos as Record<string, unknown> | null)?.[id];
      return typeof raw === 'string' ? [JSON.parse(raw) as PeerInfo] : [];
    });
  });
  if (fromRedis !== undefined) return { peers: fromRedis.sort((a, b) => (a.id < b.id ? -1 : 1)) };
  const { rows } = await req.deps.pool.query<{ id: string; address: string; last_seen: Date }>(
    `SELECT id, address, last_seen FROM peers WHERE last_seen > now() - make_interval(secs => $1) ORDER BY id`,
    [DEFAULT_PEER_TTL_SECONDS],
  );
  return { peers: rows.map((r) => ({ id: r.id, address: r.address, lastSeen: r.last_seen.toISOString() })) };
}

export const handler = httpApi({
  'POST /v1/peers/heartbeat': { scope: 'read', handler: heartbeat },
  'GET /v1/peers': { scope: 'read', handler: list },
});
