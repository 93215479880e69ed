import { describe, expect, it } from 'vitest';
import { pickOwner, rankMembers, score } from '../../../mount-client/peers/rendezvous.ts';

const members = (n: number) => Array.from({ length: n }, (_, i) => `10.0.0.${i + 1}:7070`);
const keys = (n: number) =>
  Array.from({ length: n }, (_, i) => `bucket/data/file-${i % 97}.bin@etag${i}#${i}`);

function owners(ks: string[], ms: string[]): Map<string, string> {
  return new Map(ks.map((k) => [k, pickOwner(k, ms)!]));
}

describe('rendezvous hashing', () => {
  it('gives every node the same owner whatever the order of its member list', () => {
    // Prepare
    const ms = members(5);
    const reversed = [...ms].reverse();
    // Act / Assess
    for (const k of keys(200)) expect(pickOwner(k, reversed)).toBe(pickOwner(k, ms));
  });

  it('spreads blocks evenly across members', () => {
    // Prepare
    const ms = members(4);
    const ks = keys(8000);
    // Act
    const counts = new Map<string, number>();
    for (const owner of owners(ks, ms).values()) counts.set(owner, (counts.get(owner) ?? 0) + 1);
    // Assess: each member gets 2000 ± 10 % (the binomial σ is ~39, so 200 is > 5σ)
    expect(counts.size).toBe(4);
    for (const c of counts.values()) expect(Math.abs(c - 2000)).toBeLessThan(200);
  });

  it('moves only the joining member’s share when a member joins', () => {
    // Prepare
    const ms = members(4);
    const ks = keys(5000);
    const before = owners(ks, ms);
    // Act
    const joined = '10.0.0.99:7070';
    const after = owners(ks, [...ms, joined]);
    // Assess: every moved block moved to the newcomer, and about 1/5 of them moved
    let moved = 0;
    for (const k of ks) {
      if (before.get(k) !== after.get(k)) {
        moved++;
        expect(after.get(k)).toBe(joined);
      }
    }
    expect(moved / ks.length).toBeGreaterThan(0.15);
    expect(moved / ks.length).toBeLessThan(0.25);
  });

  it('moves only the leaving member’s blocks when a member leaves', () => {
    // Prepare
    const ms = members(5);
    const ks = keys(5000);
    const before = owners(ks, ms);
    const leaving = ms[2]!;
    // Act
    const after = owners(
      ks,
      ms.filter((m) => m !== leaving),
    );
    // Assess
    for (const k of ks) {
      if (before.get(k) !== leaving) expect(after.get(k)).toBe(before.get(k));
      else expect(after.get(k)).not.toBe(leaving);
    }
  });

  it('ranks members with the owner first and the next owner second', () => {
    const ms = members(6);
    for (const k of keys(50)) {
      const ranked = rankMembers(k, [...ms, ms[0]!]);
      expect(ranked).toHaveLength(6);
      expect(ranked[0]).toBe(pickOwner(k, ms));
      // The runner-up is exactly who takes over when the owner leaves.
      expect(ranked[1]).toBe(
        pickOwner(
          k,
          ms.filter((m) => m !== ranked[0]),
        ),
      );
    }
  });

  it('has no owner without members and separates member from key in the score', () => {
    expect(pickOwner('k', [])).toBeUndefined();
    expect(score('a', 'bc')).not.toBe(score('ab', 'c'));
  });
});
