/**
 * On-disk format of one cached block (format version 3):
 *
 *   0  magic "STRB" (4)          4  format version u16      6  reserved u16 (0)
 *   8  meta length u32           12 block index u32         16 block size u32
 *   20 payload length u32        24 sub-block size u32      28 sub-block count u32
 *   32 meta: UTF-8 JSON {bucket, key, etag, versionId?, size}
 *   .. sub-block crc32c u32 × count (sub-block i covers payload bytes [i × sub, (i + 1) × sub))
 *   .. header crc32c u32 over everything above
 *   .. zero padding up to the next multiple of FILE_ALIGN (the header length is that multiple)
 *   .. payload (payload length bytes, from the header)
 *   .. zero padding up to the next multiple of FILE_ALIGN
 *
 * Why: the header names exactly which object version and block the bytes belong to, so a file
 * renamed into the wrong place, a hash collision or a stale format can never be served; the header
 * checksum catches a torn/garbled header before we trust its lengths or its checksum table; the
 * per-sub-block crc32c catch bit rot and torn writes. Any mismatch makes the block (or the slice
 * being read) a miss — decodeBlock/verifySlice return a reason — never an error and never served.
 * Integers are little-endian. Bump FORMAT_VERSION (and the cache directory name) on any change.
 *
 * Version 2 (over 1's single payload crc32c): checksums per sub-block, so a small random read reads
 * and verifies only the sub-blocks it touches instead of a whole 8 MiB block (measured 14–56 reads/s
 * with the memory tier off in v1; see docs/benchmarks/mount.md). A whole-block read still verifies
 * every byte, at the same CPU cost as one crc over the payload.
 *
 * Version 3 (over 2's unpadded layout): header and payload each padded to FILE_ALIGN (4 KiB), so
 * the whole file can be written with O_DIRECT — offsets and lengths of a direct write must be
 * multiples of the device's logical block size (512 B or 4 KiB). The page-cache write it replaces
 * cost 2–3.5 system CPU-s/GiB on a cold read (docs/benchmarks/mount-data.md). The padding must be
 * zero: a whole-file check (decodeBlock, `strata cache verify`) rejects anything else, so no byte
 * of the file goes unchecked. Costs ≤ 8 KiB per block file (0.1% of an 8 MiB block).
 */
import { crc32c } from '@node-rs/crc32';
import { rememberSubBlockCrcs, subBlockCrcs } from './payload-crcs.ts';
import type { BlockId } from './types.ts';

export const MAGIC = Buffer.from('STRB', 'latin1');
export const FORMAT_VERSION = 3;
const FIXED = 32;
/**
 * Header and payload are padded to this: 4 KiB is the largest logical block size of the disks a
 * cache lives on (512 B and 4Kn NVMe), so an O_DIRECT write of the file is valid on all of them.
 */
export const FILE_ALIGN = 4096;

/** `n` rounded up to a multiple of FILE_ALIGN. */
export function alignUp(n: number): number {
  return Math.ceil(n / FILE_ALIGN) * FILE_ALIGN;
}

/** Length of a block file holding `payloadLength` bytes behind a header of `headerLength`. */
export function fileLength(headerLength: number, payloadLength: number): number {
  return headerLength + alignUp(payloadLength);
}
/**
 * 128 KiB sub-blocks: the kernel sends FUSE reads of exactly 128 KiB at 128 KiB-aligned offsets
 * (design.md §4), so one kernel read verifies one sub-block; the table costs 256 B per 8 MiB block,
 * and a 4 KiB random read checksums 128 KiB (~10 µs) instead of 8 MiB.
 */
export const SUB_BLOCK_BYTES = 128 * 1024;

function meta(id: BlockId): Buffer {
  const o = id.object;
  return Buffer.from(
    JSON.stringify({
      bucket: o.bucket,
      key: o.key,
      etag: o.etag,
      versionId: o.versionId ?? null,
      size: o.size,
    }),
    'utf8',
  );
}

function payloadLengthOf(id: BlockId): number {
  return Math.max(0, Math.min(id.blockSize, id.object.size - id.index * id.blockSize));
}

/** The sub-block size used for blocks of `blockSize` (never larger than the block). */
export function subBlockSize(blockSize: number, preferred = SUB_BLOCK_BYTES): number {
  return Math.min(preferred, blockSize);
}

/**
 * Header length (= the payload's offset in the file, padding included) for a block id;
 * deterministic, so a reader can fetch header + payload (or header + one slice) without reading
 * the header first.
 */
export function headerLength(id: BlockId, sub = subBlockSize(id.blockSize)): number {
  return alignUp(FIXED + meta(id).length + 4 * Math.ceil(payloadLengthOf(id) / sub) + 4);
}

/**
 * The padded header (headerLength bytes) for `payload`. With `into` (headerLength bytes or more,
 * e.g. an O_DIRECT-aligned buffer) it is written there and a view of it returned.
 */
export function encodeHeader(
  id: BlockId,
  payload: Buffer,
  sub = subBlockSize(id.blockSize),
  into?: Buffer,
): Buffer {
  const m = meta(id);
  const count = Math.ceil(payload.length / sub);
  const tableAt = FIXED + m.length;
  const end = tableAt + 4 * count;
  const total = alignUp(end + 4);
  if (into && into.length < total) throw new RangeError(`header needs ${total} bytes, got ${into.length}`);
  const h = into ? into.subarray(0, total) : Buffer.allocUnsafe(total);
  h.fill(0, end + 4);
  MAGIC.copy(h, 0);
  h.writeUInt16LE(FORMAT_VERSION, 4);
  h.writeUInt16LE(0, 6);
  h.writeUInt32LE(m.length, 8);
  h.writeUInt32LE(id.index, 12);
  h.writeUInt32LE(id.blockSize, 16);
  h.writeUInt32LE(payload.length, 20);
  h.writeUInt32LE(sub, 24);
  h.writeUInt32LE(count, 28);
  m.copy(h, FIXED);
  // Reuses the table when the bytes were already checksummed (e.g. verified on arrival from a peer).
  const crcs = subBlockCrcs(payload, sub);
  for (let i = 0; i < count; i++) h.writeUInt32LE(crcs[i] as number, tableAt + 4 * i);
  h.writeUInt32LE(crc32c(h.subarray(0, end)), end);
  return h;
}

export type FailureReason =
  | 'short'
  | 'magic'
  | 'format'
  | 'header-checksum'
  | 'mismatch'
  | 'payload-checksum'
  | 'length'
  | 'padding';

export type DecodeResult = { ok: true; payload: Buffer } | { ok: false; reason: FailureReason };

/** Parsed header without an expected id (used by `strata cache verify`, which has no index). */
export interface ParsedHeader {
  index: number;
  blockSize: number;
  payloadLength: number;
  subBlockSize: number;
  /** crc32c of each sub-block of the payload. */
  subCrcs: Uint32Array;
  meta: { bucket: string; key: string; etag: string; versionId: string | null; size: number };
  headerLength: number;
}

export function parseHeader(buf: Buffer): ParsedHeader | { error: FailureReason } {
  if (buf.length < FIXED + 4) return { error: 'short' };
  if (!buf.subarray(0, 4).equals(MAGIC)) return { error: 'magic' };
  if (buf.readUInt16LE(4) !== FORMAT_VERSION) return { error: 'format' };
  const metaLen = buf.readUInt32LE(8);
  const payloadLength = buf.readUInt32LE(20);
  const sub = buf.readUInt32LE(24);
  const count = buf.readUInt32LE(28);
  const tableAt = FIXED + metaLen;
  const end = tableAt + 4 * count;
  if (buf.length < end + 4) return { error: 'short' };
  if (crc32c(buf.subarray(0, end)) !== buf.readUInt32LE(end)) return { error: 'header-checksum' };
  // The header checksum passed, so these only fail for a header written by a buggy encoder.
  if (sub === 0 || count !== Math.ceil(payloadLength / sub)) return { error: 'header-checksum' };
  let parsed: ParsedHeader['meta'];
  try {
    parsed = JSON.parse(buf.subarray(FIXED, tableAt).toString('utf8'));
  } catch {
    return { error: 'header-checksum' };
  }
  const headerLen = alignUp(end + 4);
  // Header padding, as far as the caller read it (a whole header read covers all of it).
  if (!isZero(buf.subarray(end + 4, headerLen))) return { error: 'padding' };
  const subCrcs = new Uint32Array(count);
  for (let i = 0; i < count; i++) subCrcs[i] = buf.readUInt32LE(tableAt + 4 * i);
  return {
    index: buf.readUInt32LE(12),
    blockSize: buf.readUInt32LE(16),
    payloadLength,
    subBlockSize: sub,
    subCrcs,
    meta: parsed,
    headerLength: headerLen,
  };
}

const ZEROS = Buffer.alloc(FILE_ALIGN);

/** Whether every byte of `b` (at most a few KiB of padding) is zero. */
export function isZero(b: Buffer): boolean {
  for (let at = 0; at < b.length; at += ZEROS.length) {
    const piece = b.subarray(at, at + ZEROS.length);
    if (!piece.equals(ZEROS.subarray(0, piece.length))) return false;
  }
  return true;
}

/** Parses a header and checks it describes exactly block `id` with `expectedLength` payload bytes. */
export function checkHeader(
  buf: Buffer,
  id: BlockId,
  expectedLength: number,
): ParsedHeader | { error: FailureReason } {
  const h = parseHeader(buf);
  if ('error' in h) return h;
  const o = id.object;
  if (
    h.index !== id.index ||
    h.blockSize !== id.blockSize ||
    h.meta.bucket !== o.bucket ||
    h.meta.key !== o.key ||
    h.meta.etag !== o.etag ||
    (h.meta.versionId ?? undefined) !== (o.versionId ?? undefined) ||
    h.meta.size !== o.size
  ) {
    return { error: 'mismatch' };
  }
  if (h.payloadLength !== expectedLength) return { error: 'length' };
  return h;
}

/**
 * Verifies payload bytes that start at sub-block `firstSub` and cover whole sub-blocks (the last
 * one may be the payload's short tail) against the header's table.
 */
export function verifySlice(h: ParsedHeader, firstSub: number, bytes: Buffer): boolean {
  const sub = h.subBlockSize;
  for (let off = 0, i = firstSub; off < bytes.length; off += sub, i++) {
    const expected = Math.min(sub, h.payloadLength - i * sub);
    const piece = bytes.subarray(off, off + sub);
    if (i >= h.subCrcs.length || piece.length !== expected || crc32c(piece) !== h.subCrcs[i]) return false;
  }
  return true;
}

/**
 * Verifies a whole block file against the block it is expected to hold. Returns the payload as a
 * view into `file` (no copy).
 */
export function decodeBlock(file: Buffer, id: BlockId, expectedLength: number): DecodeResult {
  const h = checkHeader(file, id, expectedLength);
  if ('error' in h) return { ok: false, reason: h.error };
  if (file.length !== fileLength(h.headerLength, h.payloadLength)) return { ok: false, reason: 'length' };
  const payloadEnd = h.headerLength + h.payloadLength;
  const payload = file.subarray(h.headerLength, payloadEnd);
  if (!verifySlice(h, 0, payload)) return { ok: false, reason: 'payload-checksum' };
  if (!isZero(file.subarray(payloadEnd))) return { ok: false, reason: 'padding' };
  // Verified: a peer server answering for this block sends these instead of checksumming it again.
  rememberSubBlockCrcs(payload, h.subBlockSize, h.subCrcs);
  return { ok: true, payload };
}
