/**
 * In-memory implementations of the reconcile ports, for unit tests and the diff benchmark. They
 * behave like the real adapters (byte-order listing with pagination and StartAfter, an index with
 * change times and the write-time in-flight guard, a ledger recording each segment once) and count
 * calls so tests can assert on work done.
 */
import { compareKeys, prefixEnd } from './key-order.ts';
import type {
  HeadResult,
  Heal,
  ListingPage,
  ReconcileIndex,
  ReconcileListing,
  RunLedger,
  Sample,
  SegmentClaim,
  ShardQueue,
} from './ports.ts';
import { inRange } from './shards.ts';
import {
  addCounts,
  emptyCounts,
  type IndexedObject,
  type ReconcileCounts,
  type ShardMessage,
  type ShardRange,
} from './types.ts';

export class MemoryListing implements ReconcileListing {
  readonly objects = new Map<string, HeadResult>();
  calls = { listPage: 0, head: 0, commonPrefixes: 0 };

  put(key: string, etag: string, size: number): void {
    this.objects.set(key, { key, etag: `"${etag}"`, size, lastModified: new Date() });
  }
  delete(key: string): void {
    this.objects.delete(key);
  }
  private sorted(prefix: string): string[] {
    return [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort(compareKeys);
  }
  async listPage(request: {
    prefix: string;
    startAfter?: string;
    continuationToken?: string;
    maxKeys: number;
  }): Promise<ListingPage> {
    this.calls.listPage++;
    const start = request.continuationToken ?? request.startAfter;
    const keys = this.sorted(request.prefix).filter((k) => start === undefined || compareKeys(k, start) > 0);
    const page = keys.slice(0, request.maxKeys);
    const result: ListingPage = { objects: page.map((k) => ({ ...(this.objects.get(k) as HeadResult) })) };
    // The token is the last key, like S3's opaque token encodes a position.
    if (keys.length > request.maxKeys) result.nextContinuationToken = page[page.length - 1] as string;
    return result;
  }
  async *commonPrefixes(prefix: string): AsyncIterable<string> {
    this.calls.commonPrefixes++;
    const seen = new Set<string>();
    for (const k of this.sorted(prefix)) {
      const rest = k.slice(prefix.length);
      const i = rest.indexOf('/');
      if (i >= 0) {
        const p = prefix + rest.slice(0, i + 1);
        if (!seen.has(p)) {
          seen.add(p);
          yield p;
        }
      }
    }
  }
  async head(key: string): Promise<HeadResult | undefined> {
    this.calls.head++;
    const o = this.objects.get(key);
    return o ? { ...o, contentType: 'application/octet-stream' } : undefined;
  }
}

export interface MemoryRow extends IndexedObject {
  /** Run id of the last drift heal, like the journal's run id. */
  healedBy?: string;
}

export class MemoryIndex implements ReconcileIndex {
  readonly rows = new Map<string, MemoryRow>();
  readonly journal: Array<{ op: Heal['op']; key: string; runId: string }> = [];
  clock = Date.now();
  calls = { read: 0, apply: 0 };

  async now(): Promise<Date> {
    return new Date(this.clock);
  }
  /** Advances the clock, as if time passed between runs. */
  tick(ms: number): void {
    this.clock += ms;
  }
  set(
    key: string,
    etag: string,
    size: number,
    state: IndexedObject['state'] = 'active',
    changedAt = new Date(this.clock),
  ): void {
    this.rows.set(key, { key, etag, size, state, changedAt });
  }
  async *read(
    range: ShardRange,
    after: string | undefined,
    upTo: string | undefined,
  ): AsyncIterable<IndexedObject[]> {
    this.calls.read++;
    const end = prefixEnd(range.prefix);
    const keys = [...this.rows.keys()]
      .filter((k) => inRange(range, k))
      .filter(
        (k) =>
          (after === undefined || compareKeys(k, after) > 0) &&
          (upTo === undefined || compareKeys(k, upTo) <= 0),
      )
      .filter((k) => end === undefined || compareKeys(k, end) < 0)
      .sort(compareKeys);
    yield keys.map((k) => ({ ...(this.rows.get(k) as MemoryRow) }));
  }
  async apply(heals: Heal[], context: { runId: string; cutoff: Date }): Promise<{ skipped: string[] }> {
    this.calls.apply++;
    const skipped: string[] = [];
    const at = new Date(this.clock);
    for (const h of heals) {
      const row = this.rows.get(h.key);
      if (row && row.changedAt.getTime() > context.cutoff.getTime()) {
        skipped.push(h.key);
        continue;
      }
      if (h.op === 'put') {
        this.rows.set(h.key, {
          key: h.key,
          etag: h.object.etag.replace(/"/g, ''),
          size: h.object.size,
          state: 'active',
          changedAt: at,
          healedBy: context.runId,
        });
      } else if (row) {
        row.state = h.op === 'mark-missing' ? 'missing' : 'deleted';
        row.changedAt = at;
        row.healedBy = context.runId;
      }
      this.journal.push({ op: h.op, key: h.key, runId: context.runId });
    }
    return { skipped };
  }
}

export class MemoryLedger implements RunLedger {
  readonly segments = new Map<
    string,
    { counts: ReconcileCounts; samples: Sample[]; final: boolean; next?: ShardMessage }
  >();
  readonly claims = new Map<string, { lease: string; expiresAt: number }>();
  readonly shardsDone = new Set<string>();
  readonly failures = new Map<string, { segment: number; attempts: number; error: string }>();
  /** Runs that failed; a failed run's segments are `done` (nothing more to do). */
  readonly failedRuns = new Set<string>();
  /** The lease clock; tests advance it to expire a crashed worker's claim. */
  clock = 0;
  private leases = 0;

  private id(m: ShardMessage, segment = m.segment): string {
    return `${m.runId}/${m.shardId}/${segment}`;
  }
  async claimSegment(message: ShardMessage, leaseMs: number): Promise<SegmentClaim> {
    if (this.failedRuns.has(message.runId)) return { status: 'done' };
    const recorded = this.segments.get(this.id(message));
    if (recorded) {
      const nextId = this.id(message, message.segment + 1);
      const taken = this.claims.has(nextId) || this.segments.has(nextId);
      return recorded.next && !taken ? { status: 'done', resend: recorded.next } : { status: 'done' };
    }
    for (const [id, s] of this.segments) {
      const [run, shard, segment] = id.split('/');
      if (
        run === message.runId &&
        Number(shard) === message.shardId &&
        s.final &&
        Number(segment) < message.segment
      )
        return { status: 'done' };
    }
    const held = this.claims.get(this.id(message));
    if (held && held.expiresAt > this.clock) return { status: 'busy' };
    const lease = `lease-${++this.leases}`;
    this.claims.set(this.id(message), { lease, expiresAt: this.clock + leaseMs });
    return { status: 'claimed', lease };
  }
  async releaseSegment(message: ShardMessage, lease: string): Promise<void> {
    if (this.claims.get(this.id(message))?.lease === lease) this.claims.delete(this.id(message));
  }
  async completeSegment(
    message: ShardMessage,
    result: { counts: ReconcileCounts; samples: Sample[]; final: boolean; next?: ShardMessage },
  ): Promise<boolean> {
    if (this.segments.has(this.id(message))) return false;
    this.segments.set(this.id(message), result);
    if (result.final) this.shardsDone.add(`${message.runId}/${message.shardId}`);
    return true;
  }
  async failShard(message: ShardMessage, failure: { attempts: number; error: string }): Promise<void> {
    this.failures.set(`${message.runId}/${message.shardId}`, { segment: message.segment, ...failure });
    this.failedRuns.add(message.runId);
  }
  totals(runId: string): ReconcileCounts {
    const total = emptyCounts();
    for (const [id, s] of this.segments) if (id.startsWith(`${runId}/`)) addCounts(total, s.counts);
    return total;
  }
}

export class MemoryQueue implements ShardQueue {
  readonly messages: ShardMessage[] = [];
  async send(messages: ShardMessage[]): Promise<void> {
    // Round-trip through JSON like SQS does, so nothing non-serializable slips through.
    for (const m of messages) this.messages.push(JSON.parse(JSON.stringify(m)) as ShardMessage);
  }
  take(): ShardMessage | undefined {
    return this.messages.shift();
  }
}
