/**
 * Why a peer fetch did not produce a block. Every one of these makes the data path fall through to
 * S3 at once; `kind` feeds the per-kind error metric and decides whether the peer is ejected.
 */
import { UnavailableError } from '../../functions/core/errors.ts';

export type PeerErrorKind =
  /** This node owns the block: reading it from S3 here is the fleet's one GET, not a peer miss. */
  | 'self'
  /** No live peer to ask (all ejected, or none configured). */
  | 'no_peers'
  /** No response headers in time: the owner is gone or hung (a live one answers at once). */
  | 'timeout'
  /** Headers came, then the body stopped: the owner's own read-through is stuck or very slow. */
  | 'stalled'
  /** Connection refused/reset, DNS, TLS — the peer is not there. */
  | 'connect'
  /** The peer answered 401: our secrets differ (or our clock is far off). */
  | 'unauthorized'
  /** The peer answered an HTTP error (it could not read the block through either). */
  | 'http'
  /** The bytes do not match the checksum or the expected length: never used, peer ejected. */
  | 'checksum'
  /** The caller gave up (the read was cancelled); says nothing about the peer. */
  | 'aborted';

/** Kinds that say the peer itself is unhealthy, so it leaves the placement set until a probe succeeds. */
export const EJECTING_KINDS: ReadonlySet<PeerErrorKind> = new Set(['timeout', 'connect', 'checksum', 'http']);

export class PeerFetchError extends UnavailableError {
  readonly kind: PeerErrorKind;
  readonly peer: string | undefined;
  constructor(kind: PeerErrorKind, message: string, options: { peer?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.kind = kind;
    this.peer = options.peer;
  }
}
