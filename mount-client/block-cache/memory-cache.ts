/**
 * In-memory hot-block LRU in front of the disk cache. A warm FUSE read is 128 KiB out of an 8 MiB
 * block; re-reading and re-verifying the whole block file for each of its 64 kernel reads would cost
 * 64× the bytes, so verified blocks stay here (bounded by bytes) and a hit is a Map lookup plus a
 * subarray. Buffers handed out must be treated as read-only by every caller.
 *
 * Holders: the cache holds one reference per stored block (block-pool.ts) — `onHold` when a block
 * is stored, `onDrop` when it leaves (eviction, replacement, delete, clear), so a pooled buffer is
 * recycled only once the cache no longer serves it.
 */
import { LRUCache } from 'lru-cache';

export class MemoryBlockCache {
  private readonly lru: LRUCache<string, Buffer>;

  constructor(
    maxBytes: number,
    private readonly hooks: { onHold?: (b: Buffer) => void; onDrop?: (b: Buffer) => void } = {},
  ) {
    // lru-cache requires maxSize ≥ 1; a 0-byte budget disables the tier.
    this.lru = new LRUCache<string, Buffer>({
      maxSize: Math.max(1, maxBytes),
      sizeCalculation: (b) => Math.max(1, b.length),
      ...(hooks.onDrop ? { dispose: (b: Buffer) => hooks.onDrop?.(b) } : {}),
    });
    this.enabled = maxBytes > 0;
  }

  /** False with a 0-byte budget (`--memory-cache 0`): nothing is ever held. */
  readonly enabled: boolean;

  get(key: string): Buffer | undefined {
    return this.enabled ? this.lru.get(key) : undefined;
  }

  /** Presence without touching recency (prefetch checks must not reorder the LRU). */
  has(key: string): boolean {
    return this.enabled && this.lru.has(key);
  }

  set(key: string, data: Buffer): void {
    if (!this.enabled || this.lru.peek(key) === data) return;
    this.hooks.onHold?.(data);
    this.lru.set(key, data);
    // lru-cache silently refuses an entry larger than the whole cache: no reference is kept then.
    if (this.lru.peek(key) !== data) this.hooks.onDrop?.(data);
  }

  delete(key: string): void {
    this.lru.delete(key);
  }

  get bytes(): number {
    return this.lru.calculatedSize ?? 0;
  }

  get entries(): number {
    return this.lru.size;
  }

  clear(): void {
    this.lru.clear();
  }
}
