/**
 * Who is in the fleet and who is healthy. Members come from a static list or from the API registry
 * (heartbeat our own address, refresh everyone else's); either can change at run time and the
 * placement set follows without a restart. A peer that fails a fetch in a way that says it is sick
 * (timeout, refused connection, bad bytes, 5xx) is ejected: it leaves the placement set at once, so
 * its blocks re-home to the next-ranked member (rendezvous.ts), and it is probed back in with
 * exponential backoff.
 *
 * What must stay true: a serving node is always a member of its own placement set (it may own
 * blocks), a client-only node never is; an ejected peer is never
 * the owner of anything; an unreachable registry keeps the last known list instead of emptying it.
 */
import type { PeerInfo, PeersResponse } from '../../functions/core/api-types.ts';
import type { PeerErrorKind } from './errors.ts';
import { EJECTING_KINDS } from './errors.ts';
import type { PeerMetrics } from './metrics.ts';
import { pickOwner } from './rendezvous.ts';

/** The registry as the membership needs it; `apiRegistry` adapts the Strata API client. */
export interface PeerRegistry {
  /** `ttlSeconds`: how long the registry keeps us without another heartbeat. */
  heartbeat(self: { id: string; address: string; ttlSeconds: number }): Promise<void>;
  list(): Promise<PeerInfo[]>;
}

/** Minimal slice of ApiClient, so tests can pass an in-memory registry. */
export interface RequestingClient {
  request<T>(method: string, path: string, options?: { body?: unknown }): Promise<T>;
}

export function apiRegistry(client: RequestingClient): PeerRegistry {
  return {
    heartbeat: async (self) => {
      await client.request('POST', '/v1/peers/heartbeat', { body: self });
    },
    list: async () => (await client.request<PeersResponse>('GET', '/v1/peers')).peers,
  };
}

export interface MembershipOptions {
  /** This node's advertised host:port. */
  self: string;
  /**
   * False for a client-only node (no peer server): it asks owners but owns nothing, and it neither
   * heartbeats nor appears in anyone's placement set. Default true.
   */
  member?: boolean;
  /** Stable id sent with heartbeats (defaults to the address). */
  nodeId?: string;
  staticPeers?: string[];
  registry?: PeerRegistry;
  /**
   * 5 s: with a registry TTL of ~3 heartbeats (15 s) a node that dies leaves everyone's list within
   * ~20 s, and before that the first failed fetch ejects it anyway. A joiner is used within 5 s.
   */
  refreshMs?: number;
  heartbeatMs?: number;
  /** Probe an ejected peer after 1 s, doubling to 30 s: fast recovery from a blip, little noise from a dead node. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** How often due probes are looked for; bounds how late a probe runs, not how often a peer is pinged. */
  probeTickMs?: number;
  probeTimeoutMs?: number;
  probe: (address: string, timeoutMs: number) => Promise<boolean>;
  metrics: PeerMetrics;
  onError?: (message: string, err: unknown) => void;
  /** A peer left or re-entered the placement set (for the mount's log). */
  onChange?: (event: { peer: string; live: boolean; reason: string; retryInMs?: number }) => void;
  now?: () => number;
}

interface MemberState {
  live: boolean;
  failures: number;
  nextProbeAt: number;
  probing: boolean;
}

export interface MemberSnapshot {
  address: string;
  live: boolean;
  failures: number;
}

export class Membership {
  readonly self: string;
  private readonly members = new Map<string, MemberState>();
  private readonly options: MembershipOptions;
  private readonly now: () => number;
  private timers: NodeJS.Timeout[] = [];
  private liveCache: string[] | undefined;

  constructor(options: MembershipOptions) {
    this.options = options;
    this.self = options.self;
    this.now = options.now ?? Date.now;
    this.setMembers(options.staticPeers ?? []);
  }

  /** Joins the registry (first heartbeat + list) and starts refresh and probe timers. */
  async start(): Promise<void> {
    const { registry } = this.options;
    if (registry) {
      if (this.options.member !== false) {
        await this.heartbeat();
        this.every(this.options.heartbeatMs ?? 5_000, () => this.heartbeat());
      }
      await this.refresh();
      this.every(this.options.refreshMs ?? 5_000, () => this.refresh());
    }
    this.every(this.options.probeTickMs ?? 250, () => this.probeDue());
  }

  close(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  /** Replaces the member list (a static list edit, or a registry refresh). Known peers keep their health. */
  setMembers(addresses: Iterable<string>): void {
    const next = new Set([...addresses].map((a) => a.trim()).filter((a) => a && a !== this.self));
    for (const address of this.members.keys()) if (!next.has(address)) this.members.delete(address);
    for (const address of next) {
      if (!this.members.has(address))
        this.members.set(address, { live: true, failures: 0, nextProbeAt: 0, probing: false });
    }
    this.changed();
  }

  /** This node plus every live peer: the placement set. */
  live(): string[] {
    if (!this.liveCache) {
      const peers = [...this.members].filter(([, s]) => s.live).map(([a]) => a);
      this.liveCache = this.options.member === false ? peers : [this.self, ...peers];
    }
    return this.liveCache;
  }

  ownerOf(key: string): string | undefined {
    return pickOwner(key, this.live());
  }

  snapshot(): MemberSnapshot[] {
    return [...this.members].map(([address, s]) => ({ address, live: s.live, failures: s.failures }));
  }

  reportFailure(address: string, kind: PeerErrorKind): void {
    const state = this.members.get(address);
    // Requests already in flight when the peer was ejected fail too; they are one incident, so they
    // must not escalate the backoff (only failed probes do).
    if (!state?.live || !EJECTING_KINDS.has(kind)) return;
    this.eject(address, state, kind);
  }

  reportSuccess(address: string): void {
    const state = this.members.get(address);
    if (state?.live) state.failures = 0;
  }

  private eject(address: string, state: MemberState, reason: string): void {
    state.failures++;
    const base = this.options.backoffBaseMs ?? 1_000;
    const max = this.options.backoffMaxMs ?? 30_000;
    const delay = Math.min(max, base * 2 ** (state.failures - 1));
    // ±20 % jitter so a fleet that lost the same peer does not probe it in lockstep.
    state.nextProbeAt = this.now() + delay * (0.8 + Math.random() * 0.4);
    if (state.live) {
      state.live = false;
      this.changed();
      this.options.onChange?.({
        peer: address,
        live: false,
        reason,
        retryInMs: Math.round(state.nextProbeAt - this.now()),
      });
    }
  }

  private async probeDue(): Promise<void> {
    const now = this.now();
    const due = [...this.members].filter(([, s]) => !s.live && !s.probing && s.nextProbeAt <= now);
    // Concurrently, so one peer that times out does not delay the others' return.
    await Promise.all(due.map(([address, state]) => this.probeOne(address, state)));
  }

  private async probeOne(address: string, state: MemberState): Promise<void> {
    state.probing = true;
    // 1 s: a probe is off the read path, so it can wait longer than a fetch before calling a peer dead.
    const ok = await this.options.probe(address, this.options.probeTimeoutMs ?? 1_000).catch(() => false);
    state.probing = false;
    if (this.members.get(address) !== state) return; // left while we probed
    if (ok) {
      // Failures are kept until a real fetch succeeds: a peer that answers pings but keeps sending
      // bad blocks is re-ejected with an ever longer backoff instead of flapping at the base delay.
      state.live = true;
      this.changed();
      this.options.onChange?.({ peer: address, live: true, reason: 'probe answered' });
    } else {
      this.eject(address, state, 'probe failed');
    }
  }

  private async heartbeat(): Promise<void> {
    try {
      // Three missed heartbeats and the registry forgets us (5 s is the registry's floor).
      const ttlSeconds = Math.max(5, Math.ceil((3 * (this.options.heartbeatMs ?? 5_000)) / 1000));
      await this.options.registry!.heartbeat({ id: this.nodeId(), address: this.self, ttlSeconds });
    } catch (err) {
      this.options.onError?.('peer heartbeat failed; will retry', err);
    }
  }

  /** The registry accepts ids of [A-Za-z0-9._:-]; the default (the address) is made to fit. */
  private nodeId(): string {
    return (this.options.nodeId ?? this.self).replace(/[^A-Za-z0-9._:-]/g, '_').slice(0, 128);
  }

  private async refresh(): Promise<void> {
    try {
      const peers = await this.options.registry!.list();
      // Static peers stay members alongside registered ones, so a partly registered fleet still works.
      this.setMembers([...(this.options.staticPeers ?? []), ...peers.map((p) => p.address)]);
    } catch (err) {
      this.options.onError?.('peer registry refresh failed; keeping the last known peers', err);
    }
  }

  private every(ms: number, fn: () => Promise<void>): void {
    const t = setInterval(() => void fn(), ms);
    // Membership upkeep must never keep a process alive on its own.
    t.unref();
    this.timers.push(t);
  }

  private changed(): void {
    this.liveCache = undefined;
    const live = [...this.members.values()].filter((s) => s.live).length;
    this.options.metrics.members.set({ state: 'live' }, live);
    this.options.metrics.members.set({ state: 'ejected' }, this.members.size - live);
  }
}
