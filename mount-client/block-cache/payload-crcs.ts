/**
 * Sub-block crc32c tables already known for block payloads held in memory.
 *
 * A block's bytes are checksummed where they are verified (a disk-cache read, a peer transfer) or
 * first stored (the disk-cache write of a block fetched from S3). Without this, the next layer that
 * needs the same checksums computes them again: a block received from a peer was verified on
 * arrival and then checksummed again for its disk-cache header, and a peer owner checksummed a
 * block its disk cache had just verified — each a full crc32c pass over 8 MiB (~10 ms of CPU on a
 * busy core, as much as copying the block). Here the table is kept next to the bytes, keyed by the
 * payload Buffer itself (WeakMap: an entry lives exactly as long as the bytes it describes).
 *
 * What must stay true: a table is only remembered for bytes it was computed over or verified
 * against, and cached payload Buffers are never mutated (data-path.ts hands them out read-only), so
 * a remembered table cannot go stale.
 */
import { crc32c } from '@node-rs/crc32';

interface Known {
  sub: number;
  crcs: Uint32Array;
}

const known = new WeakMap<Buffer, Known>();

/** Records the crc32c of each `sub`-byte sub-block of `payload` (computed or verified by the caller). */
export function rememberSubBlockCrcs(payload: Buffer, sub: number, crcs: Uint32Array): void {
  if (crcs.length === Math.ceil(payload.length / sub)) known.set(payload, { sub, crcs });
}

/** The remembered table for `payload` at sub-block size `sub`, if any. */
export function knownSubBlockCrcs(payload: Buffer, sub: number): Uint32Array | undefined {
  const k = known.get(payload);
  return k && k.sub === sub ? k.crcs : undefined;
}

/** The table for `payload`: remembered, or computed now (one pass) and remembered. */
export function subBlockCrcs(payload: Buffer, sub: number): Uint32Array {
  const have = knownSubBlockCrcs(payload, sub);
  if (have) return have;
  const crcs = new Uint32Array(Math.ceil(payload.length / sub));
  for (let i = 0; i < crcs.length; i++) crcs[i] = crc32c(payload.subarray(i * sub, (i + 1) * sub));
  known.set(payload, { sub, crcs });
  return crcs;
}
