/**
 * Registry of mount-client peers for block sharing (design.md §6).
 *
 * `POST /v1/peers/heartbeat` {id, address, ttlSeconds?} registers or refreshes a peer;
 * `GET /v1/peers` returns the live ones. With Redis: a sorted set scored by expiry plus a hash of
 * addresses, so a peer that stops heartbeating disappears after its TTL without any cleanup job.
 * Without Redis (or while it fails): the `peers` table in PostgreSQL, filtered by last_seen.
 * `GET /v1/peers/config` tells a mount's peer server what it may read through for others (the bucket,
 * the data prefix, the origin presigned URLs point at).
 *
 * Who may use them: the `read` scope suffices, but only a token without prefix limits — a peer
 * serves (and the registry lists) the whole data prefix and the fleet's addresses, which a token
 * limited to some directories must not see or steer. Each peer id is bound to the token that
 * registered it while the registration lives: another token heartbeating that id gets 409, so no
 * token can redirect another node's blocks to an address of its choosing.
 */
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { z } from 'zod';
import { cacheKeys } from '../adapters/redis/metadata-cache.ts';
import type { PeerInfo, PeersResponse } from '../core/api-types.ts';
import type { Principal } from '../core/auth.ts';
import { ConflictError, ForbiddenError } from '../core/errors.ts';
import { type ApiRequest, httpApi, parseWith } from './http/index.ts';

/** Peer sharing spans the whole data prefix, so only tokens that see all of it may take part. */
function requireUnrestricted(principal: Principal): void {
  if (!principal.prefixes.includes('/')) {
    throw new ForbiddenError(
      `peer sharing needs a token without prefix limits (this one is limited to ${principal.prefixes.join(', ')}); ` +
        'create one with `strata token create --scope read` (no --prefix) for the mount nodes',
    );
  }
}

function conflict(id: string): ConflictError {
  return new ConflictError(
    `peer id ${id} is registered by another token; a node registers under its advertised address, ` +
      'so check --peer-advertise (two nodes must not share one), or wait for the other registration to lapse (its TTL)',
  );
}

/** Clients heartbeat every ~10 s; 30 s tolerates two lost heartbeats before a peer is dropped. */
export const DEFAULT_PEER_TTL_SECONDS = 30;
/** Redis keys in the deployment's namespace: a sorted set of peer ids by expiry, and their info. */
function keys(req: ApiRequest): { Z: string; H: string } {
  const z = cacheKeys(req.deps.config.cacheNamespace).peers;
  return { Z: z, H: `${z}:info` };
}

const heartbeatBody = z.object({
  id: z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'id: 1–128 characters of [A-Za-z0-9._:-]'),
  address: z
    .string()
    .regex(/^[^\s/]+:\d{1,5}$/, 'address must be host:port')
    // Registered addresses are dialled by every node: a port no socket can have is refused here.
    .refine((a) => {
      const port = Number(a.slice(a.lastIndexOf(':') + 1));
      return port >= 1 && port <= 65535;
    }, 'address port must be 1–65535'),
  ttlSeconds: z.number().int().min(5).max(600).default(DEFAULT_PEER_TTL_SECONDS),
});

async function heartbeat(req: ApiRequest) {
  requireUnrestricted(req.principal);
  const body = parseWith(heartbeatBody, req.body ?? {}, 'body');
  const tokenId = req.principal.tokenId;
  const now = Date.now();
  const lastSeen = new Date(now).toISOString();
  const { Z, H } = keys(req);
  const info: PeerInfo = { id: body.id, address: body.address, lastSeen };
  const ok = await req.deps.redis.run('peers.heartbeat', async (r) => {
    // The binding lives exactly as long as the registration: SET NX claims a free id atomically;
    // a failed claim is ours to refresh only if we hold it.
    const owner = `${Z}:owner:${body.id}`;
    let claimed = (await r.set(owner, tokenId, { nx: true, ex: body.ttlSeconds })) !== null;
    if (!claimed) {
      const holder = await r.get<string>(owner);
      if (holder === null) {
        // Lapsed between the two calls: claim it again (a concurrent claimer may win; then 409).
        claimed = (await r.set(owner, tokenId, { nx: true, ex: body.ttlSeconds })) !== null;
      } else if (holder === tokenId) {
        await r.expire(owner, body.ttlSeconds);
        claimed = true;
      }
    }
    if (!claimed) return 'conflict' as const;
    const p = r.pipeline();
    p.zadd(Z, { score: now + body.ttlSeconds * 1000, member: body.id });
    p.hset(H, { [body.id]: JSON.stringify(info) });
    p.zremrangebyscore(Z, 0, now);
    await p.exec();
    return 'ok' as const;
  });
  if (ok === 'conflict') throw conflict(body.id);
  if (ok === undefined) {
    // One statement: the update applies only while the row is ours, unbound (rows from before
    // 0012) or lapsed, so two tokens racing for one id cannot both win.
    const { rowCount } = await req.deps.pool.query(
      `INSERT INTO peers (id, address, last_seen, token_id, expires_at)
       VALUES ($1, $2, now(), $3, now() + make_interval(secs => $4))
       ON CONFLICT (id) DO UPDATE SET address = EXCLUDED.address, last_seen = now(),
         token_id = EXCLUDED.token_id, expires_at = EXCLUDED.expires_at
       WHERE peers.token_id = EXCLUDED.token_id OR peers.token_id IS NULL
         OR COALESCE(peers.expires_at, peers.last_seen + make_interval(secs => $5)) < now()`,
      [body.id, body.address, tokenId, body.ttlSeconds, DEFAULT_PEER_TTL_SECONDS],
    );
    if (rowCount === 0) throw conflict(body.id);
    // Opportunistic pruning keeps the table small without a schedule.
    await req.deps.pool.query("DELETE FROM peers WHERE last_seen < now() - interval '1 hour'");
  }
  return { ...info, ttlSeconds: body.ttlSeconds };
}

async function list(req: ApiRequest): Promise<PeersResponse> {
  requireUnrestricted(req.principal);
  const now = Date.now();
  const { Z, H } = keys(req);
  const fromRedis = await req.deps.redis.run('peers.list', async (r) => {
    const ids = await r.zrange<string[]>(Z, now, '+inf', { byScore: true });
    if (ids.length === 0) return [];
    // Without automatic deserialization HMGET answers in field order (an array); accept both shapes.
    const infos = (await r.hmget(H, ...ids)) as unknown;
    return ids.flatMap((id, i) => {
      const raw = Array.isArray(infos) ? infos[i] : (infos as Record<string, unknown> | null)?.[id];
      const info =
        typeof raw === 'string'
          ? (JSON.parse(raw) as PeerInfo)
          : typeof raw === 'object' && raw
            ? (raw as PeerInfo)
            : undefined;
      return info ? [{ id: info.id, address: info.address, lastSeen: info.lastSeen }] : [];
    });
  });
  if (fromRedis !== undefined) return { peers: fromRedis.sort((a, b) => (a.id < b.id ? -1 : 1)) };
  const { rows } = await req.deps.pool.query<{ id: string; address: string; last_seen: Date }>(
    `SELECT id, address, last_seen FROM peers WHERE last_seen > now() - make_interval(secs => $1) ORDER BY id`,
    [DEFAULT_PEER_TTL_SECONDS],
  );
  return { peers: rows.map((r) => ({ id: r.id, address: r.address, lastSeen: r.last_seen.toISOString() })) };
}

/** GET /v1/peers/config: what a mount's peer server may read through for the rest of the fleet. */
async function peerConfig(req: ApiRequest) {
  requireUnrestricted(req.principal);
  const { bucket, dataPrefix } = req.deps.config;
  // The origin of a URL presigned the way /v1/resolve?presign=1 does it (same client, no network
  // call), so it matches the endpoint, addressing style and region exactly.
  const sample = await getSignedUrl(
    req.deps.s3,
    new GetObjectCommand({ Bucket: bucket, Key: `${dataPrefix}x` }),
    {
      expiresIn: 60,
    },
  );
  return { bucket, dataPrefix, s3Origins: [new URL(sample).origin] };
}

export const handler = httpApi({
  'GET /v1/peers/config': { scope: 'read', handler: peerConfig },
  'POST /v1/peers/heartbeat': { scope: 'read', handler: heartbeat },
  'GET /v1/peers': { scope: 'read', handler: list },
});
