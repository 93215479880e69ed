/**
 * Request authentication between peers: HMAC-SHA256 with a cluster secret over the method, the exact
 * request target (path + query, which carries every field the owner needs to read a block through)
 * and a timestamp. A signature is valid for a short window either side of the verifier's clock, so a
 * captured request cannot be replayed later and a node with a badly wrong clock is refused loudly.
 *
 * What must stay true: the secret never appears in a log, an error message or a header; signatures
 * are compared in constant time; anything that changes which bytes are served (bucket, key, version,
 * block index, block size) is inside the signed string.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { ValidationError } from '../../functions/core/errors.ts';

export const TIME_HEADER = 'x-strata-peer-time';
export const SIGNATURE_HEADER = 'x-strata-peer-signature';
/**
 * The owner's proof that it vouches for a block body: HMAC(secret, blockKey | length | crc32c). The
 * crc32c alone only catches transport damage — a rogue or faulty peer computes it over whatever it
 * sends — while this tag can only come from a holder of the cluster secret.
 */
export const BLOCK_MAC_HEADER = 'x-strata-block-mac';

/**
 * ±30 s: NTP keeps fleet clocks within milliseconds, so this only has to absorb a sloppy clock and a
 * slow queue; a replay inside it gains an attacker nothing (GETs are idempotent reads of bytes the
 * attacker already saw in the captured response).
 */
export const DEFAULT_VALIDITY_MS = 30_000;

/** 16 bytes of entropy is the least an HMAC key should have; shorter secrets are guessable offline. */
export const MIN_SECRET_LENGTH = 16;

export type VerifyFailure = 'missing' | 'malformed' | 'stale' | 'bad_signature';
export type VerifyResult = { ok: true } | { ok: false; reason: VerifyFailure };

export class PeerSigner {
  private readonly key: Buffer;
  private readonly validityMs: number;
  private readonly now: () => number;

  constructor(secret: string, options: { validityMs?: number; now?: () => number } = {}) {
    if (typeof secret !== 'string' || secret.length < MIN_SECRET_LENGTH) {
      throw new ValidationError(
        `the peer secret must be at least ${MIN_SECRET_LENGTH} characters; generate one with ` +
          '`openssl rand -base64 32` and give the same value to every node (--peer-secret or STRATA_PEER_SECRET)',
      );
    }
    this.key = Buffer.from(secret, 'utf8');
    this.validityMs = options.validityMs ?? DEFAULT_VALIDITY_MS;
    this.now = options.now ?? Date.now;
  }

  /** Headers to send with `method target`, where target is the exact path + query sent on the wire. */
  sign(method: string, target: string, at: number = this.now()): Record<string, string> {
    const time = String(Math.trunc(at));
    return { [TIME_HEADER]: time, [SIGNATURE_HEADER]: this.mac(method, target, time).toString('base64url') };
  }

  verify(
    method: string,
    target: string,
    headers: Record<string, string | string[] | undefined>,
  ): VerifyResult {
    const time = headers[TIME_HEADER];
    const signature = headers[SIGNATURE_HEADER];
    if (time === undefined || signature === undefined) return { ok: false, reason: 'missing' };
    if (typeof time !== 'string' || typeof signature !== 'string' || !/^\d{1,15}$/.test(time)) {
      return { ok: false, reason: 'malformed' };
    }
    if (Math.abs(this.now() - Number(time)) > this.validityMs) return { ok: false, reason: 'stale' };
    const given = Buffer.from(signature, 'base64url');
    const expected = this.mac(method, target, time);
    // timingSafeEqual throws on a length mismatch; the length of a MAC is public, so checking it first
    // leaks nothing.
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return { ok: false, reason: 'bad_signature' };
    }
    return { ok: true };
  }

  /** The tag sent with a block body (BLOCK_MAC_HEADER): binds the block key, its length and crc32c. */
  blockMac(blockKey: string, length: number, crc32c: number): string {
    return this.blockMacBytes(blockKey, length, crc32c).toString('base64url');
  }

  /** Constant-time check of a tag received with a block; false for anything missing or malformed. */
  verifyBlockMac(blockKey: string, length: number, crc32c: number, tag: unknown): boolean {
    if (typeof tag !== 'string') return false;
    const given = Buffer.from(tag, 'base64url');
    const expected = this.blockMacBytes(blockKey, length, crc32c);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  private blockMacBytes(blockKey: string, length: number, crc32c: number): Buffer {
    // A distinct prefix from request signatures, so a request signature can never pass as a block tag.
    return createHmac('sha256', this.key)
      .update(`strata-peer-block-v1\n${blockKey}\n${length}\n${crc32c >>> 0}`)
      .digest();
  }

  private mac(method: string, target: string, time: string): Buffer {
    // A version prefix lets the format change later without old and new nodes accepting each other's
    // signatures by accident.
    return createHmac('sha256', this.key)
      .update(`strata-peer-v1\n${method.toUpperCase()}\n${target}\n${time}`)
      .digest();
  }
}
