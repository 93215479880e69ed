/**
 * Follows the index's change journal (GET /v1/changes) and invalidates what changed, so a mount's
 * view is at most about one poll interval behind the index without any TTL guessing.
 *
 * It starts at the journal's `latest` sequence (everything before is what the empty cache will
 * read fresh). If the feed cannot be followed — the API was unreachable long enough that the
 * backlog exceeds `maxBacklogPages` — it drops the whole cache and jumps to `latest`: cheaper than
 * replaying, and equally correct.
 */
import type { Change } from '../../functions/core/api-types.ts';
import type { IndexApi } from './index-api.ts';

export interface ChangeSink {
  /** `seq`: the journal sequence of the change (the metadata cache asks for answers at least that new). */
  invalidate(path: string, seq?: number): void;
  clear(): void;
}

export interface ChangePollerOptions {
  /** ~1 s: the staleness bound promised in design.md §6, at one small API call per second. */
  intervalMs?: number;
  /** Page size per /v1/changes call. */
  limit?: number;
  /** Beyond this many pages in one tick, give up replaying and clear the cache instead. */
  maxBacklogPages?: number;
  onChanges?: (changes: Change[]) => void;
  onError?: (err: unknown) => void;
  /** After every poll that reached the journal's end (the API answers again after an outage). */
  onPoll?: (position: number) => void;
}

export class ChangePoller {
  private since = 0;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;
  private readonly intervalMs: number;
  private readonly limit: number;
  private readonly maxBacklogPages: number;

  constructor(
    private readonly api: IndexApi,
    private readonly sinks: ChangeSink[],
    private readonly options: ChangePollerOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 1000;
    this.limit = options.limit ?? 1000;
    this.maxBacklogPages = options.maxBacklogPages ?? 20;
  }

  get position(): number {
    return this.since;
  }

  /** Seeds from the journal's latest sequence, then polls in the background. */
  async start(): Promise<void> {
    const first = await this.api.changes(0, 1);
    this.since = first.latest;
    this.schedule();
  }

  /**
   * One poll: follow the journal to its end (exported for tests and for `stop`). A page whose
   * changes were all filtered out (a prefix-limited token on an older server) still moves `since`,
   * so the loop goes on while the journal is ahead and pages make progress — bounded by
   * maxBacklogPages — instead of leaving the rest for the next tick.
   */
  async poll(): Promise<number> {
    let seen = 0;
    for (let pages = 0; ; pages++) {
      if (pages >= this.maxBacklogPages) {
        const head = await this.api.changes(this.since, 1);
        for (const s of this.sinks) s.clear();
        this.since = head.latest;
        return seen;
      }
      const before = this.since;
      const page = await this.api.changes(this.since, this.limit);
      for (const change of page.changes) {
        for (const s of this.sinks) s.invalidate(change.path, change.seq);
      }
      seen += page.changes.length;
      if (page.changes.length > 0) this.options.onChanges?.(page.changes);
      this.since = Math.max(this.since, page.nextSince);
      if (this.since >= page.latest || this.since <= before) return seen;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.poll()
        .then(
          () => this.options.onPoll?.(this.since),
          (err) => this.options.onError?.(err),
        )
        .finally(() => this.schedule());
    }, this.intervalMs);
    // The poller alone must not keep a process alive (the FUSE session does).
    this.timer.unref();
  }
}
