/**
 * On-disk format of one cached block (format version 1):
 *
 *   0  magic "STRB" (4)          4  format version u16      6  reserved u16 (0)
 *   8  meta length u32           12 block index u32         16 block size u32
 *   20 payload length u32        24 payload crc32c u32
 *   28 meta: UTF-8 JSON {bucket, key, etag, versionId?, size}
 *   .. header crc32c u32 over bytes [0, 28 + meta length)
 *   .. payload
 *
 * Why: the header names exactly which object version and block the bytes belong to, so a file
 * renamed into the wrong place, a hash collision or a stale format can never be served; the header
 * checksum catches a torn/garbled header before we trust its lengths; the payload crc32c catches
 * bit rot and torn writes. Any mismatch makes the block a miss (decodeBlock returns a reason), never
 * an error and never served. Integers are little-endian. Bump FORMAT_VERSION (and the cache
 * directory name) on any change.
 */
import { crc32c } from '@node-rs/crc32';
import type { BlockId } from './types.ts';

export const MAGIC = Buffer.from('STRB', 'latin1');
export const FORMAT_VERSION = 1;
const FIXED = 28;

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

/** Header length for a block id; deterministic, so a reader can fetch header + payload in one pread. */
export function headerLength(id: BlockId): number {
  return FIXED + meta(id).length + 4;
}

export function encodeHeader(id: BlockId, payload: Buffer): Buffer {
  const m = meta(id);
  const h = Buffer.allocUnsafe(FIXED + m.length + 4);
  MAGIC.copy(h, 0);
  h.writeUInt16LE(FORMAT_VERSION, 4);
  h.writeUInt16LE(0, 6);
  h.writeUInt32LE(m.length, 8);
  h.writeUInt32LE(id.index, 12);
  h.writeUInt32LE(id.blockSize, 16);
  h.writeUInt32LE(payload.length, 20);
  h.writeUInt32LE(crc32c(payload), 24);
  m.copy(h, FIXED);
  h.writeUInt32LE(crc32c(h.subarray(0, FIXED + m.length)), FIXED + m.length);
  return h;
}

export type DecodeResult =
  | { ok: true; payload: Buffer }
  | {
      ok: false;
      reason: 'short' | 'magic' | 'format' | 'header-checksum' | 'mismatch' | 'payload-checksum' | 'length';
    };

/** Parsed header without an expected id (used by `strata cache verify`, which has no index). */
export interface ParsedHeader {
  index: number;
  blockSize: number;
  payloadLength: number;
  payloadCrc: number;
  meta: { bucket: string; key: string; etag: string; versionId: string | null; size: number };
  headerLength: number;
}

export function parseHeader(
  buf: Buffer,
): ParsedHeader | { error: Exclude<DecodeResult, { ok: true }>['reason'] } {
  if (buf.length < FIXED + 4) return { error: 'short' };
  if (!buf.subarray(0, 4).equals(MAGIC)) return { error: 'magic' };
  if (buf.readUInt16LE(4) !== FORMAT_VERSION) return { error: 'format' };
  const metaLen = buf.readUInt32LE(8);
  const end = FIXED + metaLen;
  if (buf.length < end + 4) return { error: 'short' };
  if (crc32c(buf.subarray(0, end)) !== buf.readUInt32LE(end)) return { error: 'header-checksum' };
  let parsed: ParsedHeader['meta'];
  try {
    parsed = JSON.parse(buf.subarray(FIXED, end).toString('utf8'));
  } catch {
    return { error: 'header-checksum' };
  }
  return {
    index: buf.readUInt32LE(12),
    blockSize: buf.readUInt32LE(16),
    payloadLength: buf.readUInt32LE(20),
    payloadCrc: buf.readUInt32LE(24),
    meta: parsed,
    headerLength: end + 4,
  };
}

/**
 * Verifies a whole block file against the block it is expected to hold. Returns the payload as a
 * view into `file` (no copy).
 */
export function decodeBlock(file: Buffer, id: BlockId, expectedLength: number): DecodeResult {
  const h = parseHeader(file);
  if ('error' in h) return { ok: false, reason: h.error };
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
    return { ok: false, reason: 'mismatch' };
  }
  if (h.payloadLength !== expectedLength || file.length !== h.headerLength + h.payloadLength) {
    return { ok: false, reason: 'length' };
  }
  const payload = file.subarray(h.headerLength);
  if (crc32c(payload) !== h.payloadCrc) return { ok: false, reason: 'payload-checksum' };
  return { ok: true, payload };
}
