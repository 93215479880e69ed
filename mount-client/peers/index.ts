/**
 * Peer block sharing: each mount client serves its cached blocks to the others and asks a block's
 * owner before going to S3, so a block read by N nodes costs about one S3 GET. See docs/peers.md.
 *
 * Wiring with the data path (which needs the fetcher, while the server needs the data path):
 *
 *   let dataPath: DataPath;
 *   const peering = await startPeering({ secret, peers, source: { loadBlock: (id, o) => dataPath.loadBlock(id, o) } });
 *   dataPath = createDataPath({ ..., peer: peering.fetcher });
 */
import type { Registry } from 'prom-client';
import { ValidationError } from '../../functions/core/errors.ts';
import { formatHostPort, parseHostPort } from './address.ts';
import { PeerSigner } from './auth.ts';
import { PeerClient } from './client.ts';
import { PeerFetcher } from './fetcher.ts';
import { KeepPolicy, type PeerKeepPolicy } from './keep-policy.ts';
import { Membership, type MembershipOptions, type PeerRegistry } from './membership.ts';
import { PeerMetrics } from './metrics.ts';
import type { ServePolicy } from './policy.ts';
import { type BlockSource, PeerServer } from './server.ts';

export { DEFAULT_PEER_PORT, parseHostPort, parsePeerList } from './address.ts';
export { PeerSigner } from './auth.ts';
export { type PeerErrorKind, PeerFetchError } from './errors.ts';
export { PeerFetcher } from './fetcher.ts';
export { KeepPolicy, PEER_KEEP_POLICIES, type PeerKeepPolicy } from './keep-policy.ts';
export { apiRegistry, type MemberSnapshot, Membership, type PeerRegistry } from './membership.ts';
export type { PeerMetrics, PeerStats } from './metrics.ts';
export { applyPolicy, type ServePolicy } from './policy.ts';
export { pickOwner, rankMembers } from './rendezvous.ts';
export type { BlockSource, PeerServer } from './server.ts';

export interface PeeringOptions {
  /** The data path's cache-else-S3 loader that the server answers from. */
  source: BlockSource;
  /** What the peer server reads through for others: bucket, data prefix, presigned-URL origins. */
  policy: ServePolicy;
  /** Cluster secret shared by every node (≥ 16 characters). */
  secret: string;
  /** host:port the peer server binds; port 0 picks a free one. */
  listen: string;
  /**
   * False: a client-only node. No peer server; it asks owners on a local miss but owns no blocks
   * (e.g. short-lived job nodes whose caches vanish with them). Default true.
   */
  serve?: boolean;
  /** host:port other nodes reach this one at; required when listening on a wildcard address. */
  advertise?: string;
  /** Static members (host:port); may include this node. */
  peers?: string[];
  /** Registry for discovery (heartbeat + list); combined with `peers` when both are given. */
  registry?: PeerRegistry;
  nodeId?: string;
  /** The fleet's block size; requests for another size are refused so they fall back to S3. */
  blockSize?: number;
  /** Wait for an owner's response headers before falling back to S3 (default 1 s, see fetcher.ts). */
  timeoutMs?: number;
  /** Wait for more body bytes during an owner's read-through (default 15 s, see fetcher.ts). */
  stallMs?: number;
  /** Which peer-fetched blocks this node copies into its own cache (default 'second-use', keep-policy.ts). */
  keep?: PeerKeepPolicy;
  /** Wait for the TCP handshake with an owner (default: a quarter of `timeoutMs`, at least 250 ms). */
  connectTimeoutMs?: number;
  refreshMs?: number;
  heartbeatMs?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  probeTickMs?: number;
  /** Registry to expose metrics in (the mount's shared one); a private one by default. */
  metricsRegistry?: Registry;
  onError?: (message: string, err: unknown) => void;
  onChange?: MembershipOptions['onChange'];
}

export interface Peering {
  fetcher: PeerFetcher;
  server: PeerServer;
  membership: Membership;
  metrics: PeerMetrics;
  /** This node's advertised host:port ('' for a client-only node). */
  address: string;
  close(): Promise<void>;
}

export async function startPeering(options: PeeringOptions): Promise<Peering> {
  const signer = new PeerSigner(options.secret);
  const metrics = new PeerMetrics(options.metricsRegistry);
  const serve = options.serve !== false;
  const listen = parseHostPort(options.listen, '--peer-listen');
  let address = '';
  const server = new PeerServer({
    source: options.source,
    signer,
    metrics,
    policy: options.policy,
    host: listen.host,
    port: listen.port,
    blockSize: options.blockSize,
    self: () => address,
  });
  if (serve) {
    try {
      await server.start();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
        throw new ValidationError(
          `--peer-listen ${options.listen}: the port is in use (another mount on this host?); ` +
            'give each mount its own --peer-listen HOST:PORT',
          { cause: err },
        );
      }
      throw err;
    }
    if (options.advertise) {
      address = formatHostPort(parseHostPort(options.advertise, '--peer-advertise'));
    } else if (['0.0.0.0', '::'].includes(listen.host)) {
      await server.close();
      throw new ValidationError(
        `--peer-listen ${options.listen} binds every interface, so other nodes cannot be told which one to use; ` +
          'pass --peer-advertise HOST:PORT with the address peers should connect to',
      );
    } else {
      address = formatHostPort({ host: listen.host, port: server.port });
    }
  }

  const client = new PeerClient({
    signer,
    connectTimeoutMs: options.connectTimeoutMs ?? connectTimeoutFor(options.timeoutMs),
  });
  const membership = new Membership({
    self: address,
    member: serve,
    nodeId: options.nodeId,
    staticPeers: options.peers,
    registry: options.registry,
    refreshMs: options.refreshMs,
    heartbeatMs: options.heartbeatMs,
    backoffBaseMs: options.backoffBaseMs,
    backoffMaxMs: options.backoffMaxMs,
    probeTickMs: options.probeTickMs,
    probe: (peer, timeoutMs) => client.ping(peer, timeoutMs),
    metrics,
    onError: options.onError,
    onChange: options.onChange,
  });
  try {
    await membership.start();
  } catch (err) {
    await server.close();
    await client.close();
    throw err;
  }
  const fetcher = new PeerFetcher({
    client,
    membership,
    metrics,
    timeoutMs: options.timeoutMs,
    stallMs: options.stallMs,
    keep: new KeepPolicy(options.keep),
  });
  return {
    fetcher,
    server,
    membership,
    metrics,
    address,
    async close() {
      membership.close();
      await server.close();
      await client.close();
    },
  };
}

/**
 * The handshake wait follows the header wait: 250 ms at the default 1 s (a LAN handshake takes well
 * under 1 ms, so a peer silent that long is gone), and a quarter of a raised --peer-timeout. The
 * requester notices its own completed handshake only when its event loop gets to it: on a heavily
 * loaded host — where docs/peers.md says to raise --peer-timeout — a fixed 250 ms ejected live owners
 * (seen in the FUSE peer test at --peer-timeout 5000: "peer ejected", reason timeout, 4 s after the
 * mount started — before any 5 s header wait could have lapsed).
 */
function connectTimeoutFor(timeoutMs: number | undefined): number {
  return Math.max(250, Math.round((timeoutMs ?? 1_000) / 4));
}
