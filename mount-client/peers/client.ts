/**
 * HTTP transport to other peers: a signed block GET whose bytes are checked (length and crc32c)
 * before they are returned, and a signed ping used to probe ejected peers back in. Block bodies are
 * received straight into the block buffer over kept-alive connections (block-receiver.ts), so a hit
 * costs one round trip and no per-chunk allocation; the rare ping goes through an undici Agent.
 */
import { Agent, request } from 'undici';
import { blockKey } from '../block-cache/block-key.ts';
import { subBlockSize } from '../block-cache/format.ts';
import { rememberSubBlockCrcs } from '../block-cache/payload-crcs.ts';
import { type BlockId, blockLength } from '../block-cache/types.ts';
import { parseHostPort } from './address.ts';
import { BLOCK_MAC_HEADER, type PeerSigner } from './auth.ts';
import { BlockReceiveError, BlockReceiver } from './block-receiver.ts';
import { crcFromTable, SubBlockCrc } from './crc.ts';
import { PeerFetchError } from './errors.ts';
import { CRC_HEADER, encodeBlockRequest, PING_PATH } from './wire.ts';

export interface PeerClientOptions {
  signer: PeerSigner;
  /**
   * 250 ms: peers sit on one LAN/VPC where a connect takes well under a millisecond; a peer that has
   * not answered the handshake in 250 ms is gone or drowning, and S3 is the better bet.
   */
  connectTimeoutMs?: number;
  /** Connections kept per peer; 16 matches the data path's default read concurrency per node. */
  connections?: number;
}

export class PeerClient {
  private readonly agent: Agent;
  private readonly receiver: BlockReceiver;
  private readonly signer: PeerSigner;
  private readonly connectTimeoutMs: number;

  constructor(options: PeerClientOptions) {
    this.signer = options.signer;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 250;
    this.receiver = new BlockReceiver(options.connections ?? 16);
    this.agent = new Agent({
      connect: { timeout: options.connectTimeoutMs ?? 250 },
      connections: options.connections ?? 16,
      // Below the peer server's 30 s keep-alive so the client side always closes an idle socket first.
      keepAliveTimeout: 20_000,
      keepAliveMaxTimeout: 20_000,
    });
  }

  /**
   * The block from `address`, verified; throws PeerFetchError (with a kind) on any failure.
   * `timeoutMs` bounds the wait for the response headers, which a live owner sends at once even when
   * it still has to read the block through; `stallMs` bounds each wait for body bytes after that.
   * `into` lends the buffer to receive into (exactly `length` bytes).
   */
  async getBlock(
    address: string,
    id: BlockId,
    timeouts: { timeoutMs: number; stallMs: number },
    signal?: AbortSignal,
    into?: (length: number) => Buffer,
  ): Promise<Buffer> {
    const target = encodeBlockRequest(id);
    const expected = blockLength(id);
    const { host, port } = parseHostPort(address, 'peer');
    // Into the data path's pooled block buffer when it lends one: a fresh 8 MiB allocation per
    // block cost page faults on first touch and V8 full GCs (external memory). On a failure the
    // lent buffer is dropped, never handed back half-filled (block-pool.ts leaves it to the GC).
    const data = into ? into(expected) : Buffer.allocUnsafe(expected);
    // crc32c per cache sub-block, range by range as the kernel writes the bytes into the block: one
    // pass gives both the whole-block crc32c to check and the table this node's disk cache writes
    // (remembered below, so the cache write does not checksum the block a second time).
    const sub = subBlockSize(id.blockSize);
    const crcs = new SubBlockCrc(sub, expected);
    try {
      const res = await this.receiver.get({
        host,
        port,
        target,
        headers: this.signer.sign('GET', target),
        into: data,
        onBody: (bytes) => crcs.update(bytes),
        headersTimeoutMs: timeouts.timeoutMs,
        bodyTimeoutMs: timeouts.stallMs,
        connectTimeoutMs: this.connectTimeoutMs,
        ...(signal ? { signal } : {}),
      });
      if (res.status !== 200) {
        const text = res.errorBody ?? '';
        throw new PeerFetchError(
          res.status === 401 ? 'unauthorized' : 'http',
          `peer ${address} answered HTTP ${res.status}${text ? `: ${summarize(text)}` : ''}`,
          { peer: address },
        );
      }
      if (res.length !== expected) {
        throw new PeerFetchError('checksum', `peer ${address} sent ${res.length} of ${expected} bytes`, {
          peer: address,
        });
      }
      // A header when the owner had the block at hand, a trailer when it read the block through.
      const crcHeader = res.headers[CRC_HEADER] ?? res.trailers[CRC_HEADER];
      const table = crcs.finish();
      const actual = crcFromTable(table, sub, expected);
      if (typeof crcHeader !== 'string' || Number(crcHeader) !== actual) {
        throw new PeerFetchError(
          'checksum',
          `block from peer ${address} fails its crc32c (header ${String(crcHeader)}, computed ${actual}); discarded`,
          { peer: address },
        );
      }
      // The crc32c only proves the bytes match what the sender computed; the tag proves the sender
      // holds the cluster secret and vouches for exactly this block, length and crc32c.
      const tag = res.headers[BLOCK_MAC_HEADER] ?? res.trailers[BLOCK_MAC_HEADER];
      if (!this.signer.verifyBlockMac(blockKey(id), expected, actual, tag)) {
        throw new PeerFetchError(
          'checksum',
          `block from peer ${address} ${tag === undefined ? 'has no' : 'fails its'} owner tag (${BLOCK_MAC_HEADER}); ` +
            'discarded — the peer does not hold this cluster secret, or runs an older version',
          { peer: address },
        );
      }
      rememberSubBlockCrcs(data, sub, table);
      return data;
    } catch (err) {
      throw classifyPeerFailure(err, address, signal, timeouts);
    }
  }

  /** True when `address` answers a signed ping in time (used to probe an ejected peer back in). */
  async ping(address: string, timeoutMs: number): Promise<boolean> {
    try {
      const res = await request(`http://${address}${PING_PATH}`, {
        method: 'GET',
        headers: this.signer.sign('GET', PING_PATH),
        dispatcher: this.agent,
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.body.dump();
      return res.statusCode === 200;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.receiver.close();
    await this.agent.close();
  }
}

/** A failed peer request as a PeerFetchError whose kind drives the caller's policy (exported for tests). */
export function classifyPeerFailure(
  err: unknown,
  address: string,
  signal: AbortSignal | undefined,
  timeouts: { timeoutMs: number; stallMs: number },
): PeerFetchError {
  if (err instanceof PeerFetchError) return err;
  if (signal?.aborted)
    return new PeerFetchError('aborted', `read cancelled while asking peer ${address}`, { cause: err });
  const reason = err instanceof BlockReceiveError ? err.reason : undefined;
  const peer = { peer: address, cause: err };
  switch (reason) {
    case 'headers_timeout':
      return new PeerFetchError(
        'timeout',
        `peer ${address} did not answer within ${timeouts.timeoutMs} ms`,
        peer,
      );
    case 'connect_timeout':
      // The receiver's message names the connect wait (a quarter of --peer-timeout, ≥ 250 ms).
      return new PeerFetchError(
        'timeout',
        `peer ${address} did not accept a connection (${(err as Error).message}); is it up and reachable on that port?`,
        peer,
      );
    case 'body_timeout':
      return new PeerFetchError(
        'stalled',
        `peer ${address} sent nothing for ${timeouts.stallMs} ms mid-block`,
        peer,
      );
    case 'overflow':
      return new PeerFetchError(
        'checksum',
        `peer ${address} sent more than the block: ${(err as Error).message}`,
        peer,
      );
    case 'aborted':
      return new PeerFetchError('aborted', `read cancelled while asking peer ${address}`, peer);
    case 'connect':
    case 'closed':
      return new PeerFetchError(
        'connect',
        `cannot fetch a block from peer ${address}: ${(err as Error).message}`,
        peer,
      );
    default:
      return new PeerFetchError(
        'http',
        `cannot fetch a block from peer ${address}: ${(err as Error).message}`,
        peer,
      );
  }
}

function summarize(text: string): string {
  try {
    const parsed = JSON.parse(text) as { error?: { message?: string } };
    if (parsed.error?.message) return parsed.error.message.slice(0, 200);
  } catch {}
  return text.slice(0, 200);
}
