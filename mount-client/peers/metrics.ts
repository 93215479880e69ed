/**
 * Peer-tier metrics. The data path counts the local and S3 tiers; this module counts what happens
 * between peers, from both ends: fetches this node made (hits, bytes, latency, errors by kind) and
 * blocks it served. Plain counters mirror the Prometheus ones so tests and benchmarks can read exact
 * numbers without scraping.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { PeerErrorKind } from './errors.ts';

export interface PeerStats {
  hits: number;
  hitBytes: number;
  /** Errors by kind, including 'self' (not an error of the fleet, but a fetch we did not make). */
  errors: Partial<Record<PeerErrorKind, number>>;
  served: number;
  servedBytes: number;
  /** Requests refused with 401. */
  rejected: number;
}

/**
 * Latency buckets from 1 ms (a LAN hit of a small block) to 5 s (past any sane peer timeout), so a
 * histogram shows both hits served from the owner's cache and owner read-throughs from S3.
 */
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

function metric<T>(registry: Registry | undefined, name: string, make: () => T): T {
  // A shared registry may already hold the metric (several peering instances in one process).
  return (registry?.getSingleMetric(name) as T | undefined) ?? make();
}

export class PeerMetrics {
  private readonly s: PeerStats = {
    hits: 0,
    hitBytes: 0,
    errors: {},
    served: 0,
    servedBytes: 0,
    rejected: 0,
  };
  private readonly fetches: Counter<'result'>;
  private readonly fetchBytes: Counter;
  private readonly fetchSeconds: Histogram<'result'>;
  private readonly errorsByKind: Counter<'kind'>;
  private readonly servedTotal: Counter<'status'>;
  private readonly servedBytes: Counter;
  private readonly serveSeconds: Histogram;
  readonly members: Gauge<'state'>;

  constructor(registry?: Registry) {
    const registers = registry ? [registry] : [];
    this.fetches = metric(
      registry,
      'strata_peer_fetches_total',
      () =>
        new Counter({
          name: 'strata_peer_fetches_total',
          help: 'Blocks asked of a peer owner, by result (hit or error)',
          labelNames: ['result'],
          registers,
        }),
    );
    this.fetchBytes = metric(
      registry,
      'strata_peer_fetch_bytes_total',
      () =>
        new Counter({ name: 'strata_peer_fetch_bytes_total', help: 'Bytes received from peers', registers }),
    );
    this.fetchSeconds = metric(
      registry,
      'strata_peer_fetch_seconds',
      () =>
        new Histogram({
          name: 'strata_peer_fetch_seconds',
          help: 'Latency of peer block fetches, by result',
          labelNames: ['result'],
          buckets: BUCKETS,
          registers,
        }),
    );
    this.errorsByKind = metric(
      registry,
      'strata_peer_errors_total',
      () =>
        new Counter({
          name: 'strata_peer_errors_total',
          help: 'Peer fetches that fell back to S3, by kind (self = this node owns the block)',
          labelNames: ['kind'],
          registers,
        }),
    );
    this.servedTotal = metric(
      registry,
      'strata_peer_served_total',
      () =>
        new Counter({
          name: 'strata_peer_served_total',
          help: 'Requests answered by this node’s peer server, by HTTP status',
          labelNames: ['status'],
          registers,
        }),
    );
    this.servedBytes = metric(
      registry,
      'strata_peer_served_bytes_total',
      () =>
        new Counter({
          name: 'strata_peer_served_bytes_total',
          help: 'Block bytes served to peers',
          registers,
        }),
    );
    this.serveSeconds = metric(
      registry,
      'strata_peer_serve_seconds',
      () =>
        new Histogram({
          name: 'strata_peer_serve_seconds',
          help: 'Time to answer a peer block request (includes read-through from S3)',
          buckets: BUCKETS,
          registers,
        }),
    );
    this.members = metric(
      registry,
      'strata_peer_members',
      () =>
        new Gauge({
          name: 'strata_peer_members',
          help: 'Known peers by state (live or ejected)',
          labelNames: ['state'],
          registers,
        }),
    );
  }

  hit(bytes: number, seconds: number): void {
    this.s.hits++;
    this.s.hitBytes += bytes;
    this.fetches.inc({ result: 'hit' });
    this.fetchBytes.inc(bytes);
    this.fetchSeconds.observe({ result: 'hit' }, seconds);
  }

  error(kind: PeerErrorKind, seconds?: number): void {
    this.s.errors[kind] = (this.s.errors[kind] ?? 0) + 1;
    this.errorsByKind.inc({ kind });
    if (seconds !== undefined) {
      this.fetches.inc({ result: 'error' });
      this.fetchSeconds.observe({ result: 'error' }, seconds);
    }
  }

  served(status: number, bytes: number, seconds: number): void {
    this.servedTotal.inc({ status: String(status) });
    if (status === 401) this.s.rejected++;
    if (status === 200) {
      this.s.served++;
      this.s.servedBytes += bytes;
      this.servedBytes.inc(bytes);
      this.serveSeconds.observe(seconds);
    }
  }

  stats(): PeerStats {
    return { ...this.s, errors: { ...this.s.errors } };
  }
}
