import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { PeerInfo } from '../../../functions/core/api-types.ts';
import { Membership, type PeerRegistry } from '../../../mount-client/peers/membership.ts';
import { PeerMetrics } from '../../../mount-client/peers/metrics.ts';

/** Drives timers by hand: the membership runs its probe tick through `tick()`. */
function setup(
  options: { peers?: string[]; registry?: PeerRegistry; probeOk?: (a: string) => boolean } = {},
) {
  let now = 1_000_000;
  const probes: string[] = [];
  const registry = new Registry();
  const m = new Membership({
    self: 'self:1',
    staticPeers: options.peers,
    registry: options.registry,
    backoffBaseMs: 1_000,
    backoffMaxMs: 8_000,
    probe: async (address) => {
      probes.push(address);
      return options.probeOk?.(address) ?? true;
    },
    metrics: new PeerMetrics(registry),
    now: () => now,
  });
  const tick = async (ms: number) => {
    now += ms;
    await (m as unknown as { probeDue(): Promise<void> }).probeDue();
  };
  return { m, probes, tick, registry };
}

class MemoryRegistry implements PeerRegistry {
  peers = new Map<string, PeerInfo>();
  heartbeats = 0;
  down = false;
  async heartbeat(self: { id: string; address: string; ttlSeconds: number }) {
    this.heartbeats++;
    this.peers.set(self.id, { id: self.id, address: self.address, lastSeen: new Date().toISOString() });
  }
  async list() {
    if (this.down) throw new Error('registry down');
    return [...this.peers.values()];
  }
}

describe('Membership', () => {
  it('always includes this node and ignores it in the peer list', () => {
    const { m } = setup({ peers: ['a:1', 'self:1', 'b:1'] });
    expect(m.live().sort()).toEqual(['a:1', 'b:1', 'self:1']);
    expect(m.snapshot().map((s) => s.address)).toEqual(['a:1', 'b:1']);
  });

  it('ejects a peer on a sick failure but not on a cancelled read or a 401', () => {
    const { m } = setup({ peers: ['a:1', 'b:1'] });
    m.reportFailure('a:1', 'aborted');
    m.reportFailure('a:1', 'unauthorized');
    expect(m.live()).toContain('a:1');
    m.reportFailure('a:1', 'timeout');
    expect(m.live()).not.toContain('a:1');
    expect(m.live()).toContain('b:1');
    // requests that were in flight fail too: one incident, no extra backoff
    m.reportFailure('a:1', 'connect');
    m.reportFailure('a:1', 'connect');
    expect(m.snapshot()[0]).toEqual({ address: 'a:1', live: false, failures: 1 });
  });

  it('never names an ejected peer as owner', () => {
    const { m } = setup({ peers: ['a:1', 'b:1', 'c:1'] });
    const keys = Array.from({ length: 300 }, (_, i) => `k${i}`);
    m.reportFailure('b:1', 'connect');
    for (const k of keys) expect(m.ownerOf(k)).not.toBe('b:1');
  });

  it('probes an ejected peer back in with exponential backoff', async () => {
    // Prepare: the peer stays down for two probes
    let up = false;
    const { m, probes, tick } = setup({ peers: ['a:1'], probeOk: () => up });
    m.reportFailure('a:1', 'connect');
    // Act / Assess: no probe before the first backoff (1 s ± 20 %)
    await tick(700);
    expect(probes).toHaveLength(0);
    await tick(600);
    expect(probes).toHaveLength(1);
    // second failure doubles the wait (2 s ± 20 %)
    await tick(1_500);
    expect(probes).toHaveLength(1);
    await tick(1_000);
    expect(probes).toHaveLength(2);
    expect(m.snapshot()[0]).toEqual({ address: 'a:1', live: false, failures: 3 });
    // it recovers: next probe (4 s ± 20 %) succeeds and the peer is live again
    up = true;
    await tick(5_000);
    expect(probes).toHaveLength(3);
    expect(m.snapshot()[0]).toEqual({ address: 'a:1', live: true, failures: 3 });
    // a good fetch clears the record; a sick peer that passes pings is re-ejected with a longer wait
    m.reportSuccess('a:1');
    expect(m.snapshot()[0]).toEqual({ address: 'a:1', live: true, failures: 0 });
  });

  it('follows joins and leaves, keeping the health of known peers', () => {
    const { m } = setup({ peers: ['a:1', 'b:1'] });
    m.reportFailure('a:1', 'checksum');
    m.setMembers(['a:1', 'c:1']);
    expect(m.snapshot()).toEqual([
      { address: 'a:1', live: false, failures: 1 },
      { address: 'c:1', live: true, failures: 0 },
    ]);
    expect(m.live().sort()).toEqual(['c:1', 'self:1']);
  });

  it('joins the registry, picks up other nodes and keeps them when the registry is down', async () => {
    // Prepare
    const reg = new MemoryRegistry();
    await reg.heartbeat({ id: 'n2', address: 'b:1', ttlSeconds: 15 });
    const { m } = setup({ registry: reg, peers: ['static:1'] });
    // Act
    await m.start();
    // Assess
    expect(reg.peers.get('self:1')?.address).toBe('self:1');
    expect(m.live().sort()).toEqual(['b:1', 'self:1', 'static:1']);
    reg.down = true;
    await (m as unknown as { refresh(): Promise<void> }).refresh();
    expect(m.live().sort()).toEqual(['b:1', 'self:1', 'static:1']);
    reg.down = false;
    reg.peers.delete('n2');
    await (m as unknown as { refresh(): Promise<void> }).refresh();
    expect(m.live().sort()).toEqual(['self:1', 'static:1']);
    m.close();
  });

  it('tells the mount log when a peer is ejected and when it is back', async () => {
    // Prepare
    const events: Array<{ peer: string; live: boolean; reason: string }> = [];
    let now = 0;
    const m = new Membership({
      self: 'self:1',
      staticPeers: ['a:1'],
      backoffBaseMs: 1_000,
      probe: async () => true,
      metrics: new PeerMetrics(new Registry()),
      now: () => now,
      onChange: ({ peer, live, reason }) => events.push({ peer, live, reason }),
    });
    // Act
    m.reportFailure('a:1', 'timeout');
    m.reportFailure('a:1', 'timeout'); // already out: no second event
    now += 5_000;
    await (m as unknown as { probeDue(): Promise<void> }).probeDue();
    // Assess
    expect(events).toEqual([
      { peer: 'a:1', live: false, reason: 'timeout' },
      { peer: 'a:1', live: true, reason: 'probe answered' },
    ]);
  });

  it('reports live and ejected counts as a gauge', async () => {
    const { m, registry } = setup({ peers: ['a:1', 'b:1', 'c:1'] });
    m.reportFailure('c:1', 'http');
    const text = await registry.metrics();
    expect(text).toContain('strata_peer_members{state="live"} 2');
    expect(text).toContain('strata_peer_members{state="ejected"} 1');
  });
});
