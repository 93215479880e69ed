/**
 * The peer tier as the data path sees it: a BlockFetcher named 'peer'. For each block it picks the
 * owner among live members by rendezvous hashing and asks it, with a short timeout. Any failure
 * throws at once so the data path reads the block from S3 itself; a peer that failed in a way that
 * says it is sick is ejected from placement (membership.ts).
 *
 * When this node is the owner there is nobody to ask: the fetch throws kind 'self' and the data path
 * reads S3 — that read is the fleet's one GET for the block, and the peer server will hand the
 * cached result to everyone else.
 */
import { blockKey } from '../block-cache/block-key.ts';
import type { BlockFetcher, BlockId } from '../block-cache/types.ts';
import type { PeerClient } from './client.ts';
import { PeerFetchError } from './errors.ts';
import { KeepPolicy } from './keep-policy.ts';
import type { Membership } from './membership.ts';
import type { PeerMetrics } from './metrics.ts';

export interface PeerFetcherOptions {
  client: PeerClient;
  membership: Membership;
  metrics: PeerMetrics;
  /**
   * 1 s until the owner's response headers. A live owner sends them within a millisecond or two on a
   * LAN — at once for a cached block, and before it starts a read-through (server.ts) — so only a
   * dead, hung or drowning owner takes this long, and that owner is ejected.
   */
  timeoutMs?: number;
  /**
   * 15 s of silence mid-body. The owner is reading the block through from the same S3 this node
   * would use, so waiting for it costs no more than a direct read and saves a duplicate GET; only a
   * read-through stuck past S3's own retries is abandoned.
   */
  stallMs?: number;
  /** Which fetched blocks this node also keeps in its own disk cache (keep-policy.ts). */
  keep?: KeepPolicy;
}

export class PeerFetcher implements BlockFetcher {
  readonly name = 'peer';
  private readonly options: PeerFetcherOptions;
  private readonly timeouts: { timeoutMs: number; stallMs: number };
  private readonly keep: KeepPolicy;

  constructor(options: PeerFetcherOptions) {
    this.options = options;
    this.timeouts = { timeoutMs: options.timeoutMs ?? 1_000, stallMs: options.stallMs ?? 15_000 };
    this.keep = options.keep ?? new KeepPolicy();
  }

  /**
   * Asked by the data path once per block this tier delivered: whether to write it to this node's
   * disk cache too (the owner already holds it; see keep-policy.ts).
   */
  keepCopy(_id: BlockId, key: string): boolean {
    return this.keep.onFetched(key);
  }

  /** The member that owns `id` right now (this node's own address when it is the owner). */
  ownerOf(id: BlockId): string | undefined {
    return this.options.membership.ownerOf(blockKey(id));
  }

  async fetch(id: BlockId, signal?: AbortSignal, into?: (length: number) => Buffer): Promise<Buffer> {
    const { client, membership, metrics } = this.options;
    const owner = this.ownerOf(id);
    if (owner === undefined || owner === membership.self) {
      metrics.error('self');
      throw new PeerFetchError('self', 'this node owns the block; read it from S3');
    }
    const started = performance.now();
    try {
      const data = await client.getBlock(owner, id, this.timeouts, signal, into);
      metrics.hit(data.length, (performance.now() - started) / 1000);
      membership.reportSuccess(owner);
      return data;
    } catch (err) {
      const e =
        err instanceof PeerFetchError
          ? err
          : new PeerFetchError('http', `peer fetch from ${owner} failed`, { peer: owner, cause: err });
      metrics.error(e.kind, (performance.now() - started) / 1000);
      membership.reportFailure(owner, e.kind);
      throw e;
    }
  }
}
