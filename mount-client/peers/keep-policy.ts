/**
 * Which peer-fetched blocks a node keeps a copy of in its own disk cache.
 *
 * Why not all of them: a block fetched from its owner is already cached once in the fleet (on the
 * owner). Writing a second copy costs the reader an 8 MiB page-cache write per block — measured as
 * the largest single item in a peer hit's CPU profile (31 % of the reader's samples, in the kernel's
 * copy into the page cache; docs/benchmarks/peers.md) — and every such copy takes cache space that
 * would otherwise hold a block nobody in the fleet has. So the fleet caches each block once by
 * default, and a node keeps its own copy only of blocks it reads again ("hot"): the second peer
 * fetch of a block (after the memory LRU dropped it) is written to disk, and later reads are local.
 *
 * Policies: 'second-use' (default, above), 'always' (every peer-fetched block is copied: the
 * behaviour before, for nodes that must keep working through owner outages), 'never' (the owner's
 * copy only).
 */
import { LRUCache } from 'lru-cache';

export type PeerKeepPolicy = 'second-use' | 'always' | 'never';
export const PEER_KEEP_POLICIES: readonly PeerKeepPolicy[] = ['second-use', 'always', 'never'];

/**
 * 65,536 block keys (~5 MiB of keys and bookkeeping): at 8 MiB blocks that remembers the first use
 * of 512 GiB of peer reads, more than any node's cache, so a block re-read while its first use is
 * still in the node's cache horizon is recognised as hot.
 */
const DEFAULT_REMEMBERED = 65_536;

export class KeepPolicy {
  private readonly seen: LRUCache<string, true>;

  constructor(
    readonly policy: PeerKeepPolicy = 'second-use',
    remembered = DEFAULT_REMEMBERED,
  ) {
    this.seen = new LRUCache({ max: remembered });
  }

  /**
   * Records one delivered peer fetch of `key` and says whether the data path should keep a disk
   * copy of it. Called once per fetched block.
   */
  onFetched(key: string): boolean {
    switch (this.policy) {
      case 'always':
        return true;
      case 'never':
        return false;
      default:
        if (this.seen.has(key)) return true;
        this.seen.set(key, true);
        return false;
    }
  }
}
