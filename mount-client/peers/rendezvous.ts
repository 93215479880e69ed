/**
 * Rendezvous (highest-random-weight) hashing: the owner of a block is the member whose
 * hash(member, blockKey) is highest. Every node that sees the same member set picks the same owner
 * without coordination, and when a member joins or leaves only the blocks it wins (or won) move —
 * about 1/N of them — so the rest of the fleet's caches stay useful.
 *
 * What must stay true: the score depends only on (member, key), never on the order of the member
 * list or on which node computes it; members are identified by their advertised `host:port`, which
 * is the one name every node (static list or registry) agrees on.
 */
import { hash } from 'node:crypto';

/**
 * 64-bit score of `member` for `key`. SHA-256 is far more than HRW needs, but it is uniform, built
 * in, and costs ~1 µs per member per block — noise next to moving a block of a megabyte or more.
 */
export function score(member: string, key: string): bigint {
  // The NUL separator keeps ("a", "bc") and ("ab", "c") from colliding.
  return hash('sha256', `${member}\u0000${key}`, 'buffer').readBigUInt64BE(0);
}

/** The owner of `key` among `members`, or undefined when there are none. */
export function pickOwner(key: string, members: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestScore = -1n;
  for (const member of members) {
    const s = score(member, key);
    // Ties (astronomically unlikely) break on the name so every node still agrees.
    if (s > bestScore || (s === bestScore && best !== undefined && member < best)) {
      best = member;
      bestScore = s;
    }
  }
  return best;
}

/** All members ordered by preference for `key` (owner first); useful for a fallback owner. */
export function rankMembers(key: string, members: Iterable<string>): string[] {
  return [...new Set(members)]
    .map((member) => ({ member, s: score(member, key) }))
    .sort((a, b) => (a.s === b.s ? (a.member < b.member ? -1 : 1) : a.s > b.s ? -1 : 1))
    .map((x) => x.member);
}
