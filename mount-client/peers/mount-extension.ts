/**
 * The peer tier as a `strata mount` extension: the data path gets the fetcher when it is created;
 * the server, membership and registry heartbeat start once the data path exists (the server answers
 * from it). Until then — and if peering failed to start — the fetcher throws at once, so reads go
 * straight to S3.
 */
import { ValidationError } from '../../functions/core/errors.ts';
import type { BlockFetcher, BlockId } from '../block-cache/types.ts';
import { mountRegistry } from '../metrics.ts';
import type { Logger, MountExtension } from '../mount.ts';
import { DEFAULT_PEER_PORT } from './address.ts';
import { PeerFetchError } from './errors.ts';
import { type Peering, type PeeringOptions, startPeering } from './index.ts';
import { PEER_KEEP_POLICIES, type PeerKeepPolicy } from './keep-policy.ts';
import { apiRegistry } from './membership.ts';
import { normalizeOrigins, type ServePolicy } from './policy.ts';

/** GET /v1/peers/config: what the deployment stores, so the peer server serves that and nothing else. */
export interface PeerConfigResponse {
  bucket: string;
  dataPrefix: string;
  /** Origins the API's presigned GET URLs point at. */
  s3Origins: string[];
}

export interface PeerMountOptions {
  peers: string[];
  /** Discover peers through the API registry (heartbeat + list). */
  registry: boolean;
  listen?: string;
  advertise?: string;
  /** False: ask peers but serve nothing and own nothing (--peer-client-only). */
  serve?: boolean;
  secret?: string;
  blockSize: number;
  nodeId?: string;
  tuning?: Partial<Pick<PeeringOptions, 'timeoutMs' | 'refreshMs' | 'heartbeatMs' | 'keep'>>;
}

/** The extension, or undefined when peer sharing is off (no --peers and no --peer-registry). */
export function peerMountExtension(o: PeerMountOptions): MountExtension | undefined {
  if (o.peers.length === 0 && !o.registry) return undefined;
  if (!o.secret) {
    throw new ValidationError(
      'peer sharing needs a cluster secret: set STRATA_PEER_SECRET (or --peer-secret) to the same value on ' +
        'every node, e.g. from `openssl rand -base64 32`',
    );
  }
  const secret = o.secret;
  const keep = o.tuning?.keep ?? keepFromEnv(process.env.STRATA_PEER_KEEP);
  let peering: Peering | undefined;
  const peer: BlockFetcher & {
    fetch(id: BlockId, signal?: AbortSignal, into?: (length: number) => Buffer): Promise<Buffer>;
    keepCopy(id: BlockId, key: string): boolean;
  } = {
    name: 'peer',
    fetch(id: BlockId, signal?: AbortSignal, into?: (length: number) => Buffer) {
      if (!peering) return Promise.reject(new PeerFetchError('no_peers', 'peer sharing is not running'));
      return peering.fetcher.fetch(id, signal, into);
    },
    keepCopy(id: BlockId, key: string) {
      return peering ? peering.fetcher.keepCopy(id, key) : true;
    },
  };
  return {
    name: 'peer sharing',
    peer,
    async start({
      dataPath,
      api,
      log,
      presign,
    }: {
      dataPath: PeeringOptions['source'];
      api: PeerApi;
      log: Logger;
      presign?: boolean;
    }) {
      let policy: ServePolicy | undefined;
      let serve = o.serve !== false;
      if (serve) {
        try {
          policy = await servePolicy(api, presign ?? false);
        } catch (err) {
          // Fail closed: without knowing the bucket and prefix the server would serve anything.
          serve = false;
          log('warn', 'peer server off (client only): cannot read GET /v1/peers/config', {
            error: (err as Error).message,
            fix: 'use a token without prefix limits for peer sharing, and an API that serves /v1/peers/config',
          });
        }
      }
      peering = await startPeering({
        policy: policy ?? { bucket: '', dataPrefix: '' },
        source: dataPath,
        secret,
        listen: o.listen ?? `127.0.0.1:${DEFAULT_PEER_PORT}`,
        ...(o.advertise ? { advertise: o.advertise } : {}),
        serve,
        peers: o.peers,
        ...(o.registry ? { registry: apiRegistry(api) } : {}),
        ...(o.nodeId ? { nodeId: o.nodeId } : {}),
        blockSize: o.blockSize,
        metricsRegistry: mountRegistry,
        onError: (message, err) => log('warn', message, { error: (err as Error).message }),
        onChange: ({ peer, live, reason, retryInMs }) =>
          log(live ? 'info' : 'warn', live ? 'peer back in placement' : 'peer ejected', {
            peer,
            reason,
            ...(retryInMs !== undefined ? { retryInMs } : {}),
          }),
        ...o.tuning,
        keep,
      });
      log('info', 'peer sharing on', {
        address: peering.address || '(client only)',
        staticPeers: o.peers.length,
        registry: o.registry,
      });
    },
    async stop() {
      await peering?.close();
      peering = undefined;
    },
    stats() {
      return { peers: peerStats(peering) };
    },
  };
}

type PeerApi = Parameters<typeof apiRegistry>[0];

/** STRATA_PEER_KEEP: which peer-fetched blocks this node also caches (keep-policy.ts). */
export function keepFromEnv(value: string | undefined): PeerKeepPolicy {
  if (value === undefined || value === '') return 'second-use';
  if ((PEER_KEEP_POLICIES as readonly string[]).includes(value)) return value as PeerKeepPolicy;
  throw new ValidationError(
    `peer keep policy ${JSON.stringify(value)} (--peer-keep or STRATA_PEER_KEEP) is not one: use ${PEER_KEEP_POLICIES.join(', ')} ` +
      '(second-use, the default, copies a peer-fetched block into this cache when it is read again)',
  );
}

/** The deployment's bucket and data prefix; presigned-URL origins only for a node in presign mode. */
export async function servePolicy(api: PeerApi, presign: boolean): Promise<ServePolicy> {
  const c = await api.request<PeerConfigResponse>('GET', '/v1/peers/config');
  if (typeof c?.bucket !== 'string' || !c.bucket || typeof c.dataPrefix !== 'string') {
    throw new ValidationError('GET /v1/peers/config answered without bucket and dataPrefix');
  }
  return {
    bucket: c.bucket,
    dataPrefix: c.dataPrefix,
    ...(presign ? { presignOrigins: normalizeOrigins(c.s3Origins ?? []) } : {}),
  };
}

/** The /stats section: this node's address, members and their state, and the peer counters. */
export function peerStats(peering: Peering | undefined): Record<string, unknown> {
  if (!peering) return { running: false };
  return {
    running: true,
    address: peering.address || null,
    members: peering.membership.snapshot(),
    ...peering.metrics.stats(),
  };
}
