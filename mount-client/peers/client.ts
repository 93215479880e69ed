/**
 * HTTP transport to other peers: a signed block GET whose bytes are checked (length and crc32c)
 * before they are returned, and a signed ping used to probe ejected peers back in. One undici Agent
 * keeps connections to each peer alive, so a hit costs one round trip, not a TCP handshake.
 */
import { Agent, request } from 'undici';
import { blockKey } from '../block-cache/block-key.ts';
import { subBlockSize } from '../block-cache/format.ts';
import { rememberSubBlockCrcs } from '../block-cache/payload-crcs.ts';
import { type BlockId, blockLength } from '../block-cache/types.ts';
import { BLOCK_MAC_HEADER, type PeerSigner } from './auth.ts';
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

const CONNECTION_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
]);

export class PeerClient {
  private readonly agent: Agent;
  private readonly signer: PeerSigner;

  constructor(options: PeerClientOptions) {
    this.signer = options.signer;
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
   */
  async getBlock(
    address: string,
    id: BlockId,
    timeouts: { timeoutMs: number; stallMs: number },
    signal?: AbortSignal,
  ): Promise<Buffer> {
    const target = encodeBlockRequest(id);
    const expected = blockLength(id);
    try {
      const res = await request(`http://${address}${target}`, {
        method: 'GET',
        headers: this.signer.sign('GET', target),
        dispatcher: this.agent,
        headersTimeout: timeouts.timeoutMs,
        bodyTimeout: timeouts.stallMs,
        ...(signal ? { signal } : {}),
      });
      if (res.statusCode !== 200) {
        const text = await res.body.text().catch(() => '');
        throw new PeerFetchError(
          res.statusCode === 401 ? 'unauthorized' : 'http',
          `peer ${address} answered HTTP ${res.statusCode}${text ? `: ${summarize(text)}` : ''}`,
          { peer: address },
        );
      }
      const data = Buffer.allocUnsafe(expected);
      let filled = 0;
      // crc32c per cache sub-block, chunk by chunk while each is hot in the CPU cache: one pass gives
      // both the whole-block crc32c to check and the table this node's disk cache writes (remembered
      // below, so the cache write does not checksum the block a second time).
      const sub = subBlockSize(id.blockSize);
      const crcs = new SubBlockCrc(sub, expected);
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        if (filled + chunk.length > expected) {
          res.body.destroy();
          throw new PeerFetchError('checksum', `peer ${address} sent more than the ${expected}-byte block`, {
            peer: address,
          });
        }
        chunk.copy(data, filled);
        crcs.update(chunk);
        filled += chunk.length;
      }
      if (filled !== expected) {
        throw new PeerFetchError('checksum', `peer ${address} sent ${filled} of ${expected} bytes`, {
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
      throw classify(err, address, signal, timeouts);
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
    await this.agent.close();
  }
}

function classify(
  err: unknown,
  address: string,
  signal: AbortSignal | undefined,
  timeouts: { timeoutMs: number; stallMs: number },
): PeerFetchError {
  if (err instanceof PeerFetchError) return err;
  if (signal?.aborted)
    return new PeerFetchError('aborted', `read cancelled while asking peer ${address}`, { cause: err });
  const code = (err as { code?: string }).code ?? '';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new PeerFetchError('timeout', `peer ${address} did not answer within ${timeouts.timeoutMs} ms`, {
      peer: address,
      cause: err,
    });
  }
  if (code === 'UND_ERR_BODY_TIMEOUT') {
    return new PeerFetchError(
      'stalled',
      `peer ${address} sent nothing for ${timeouts.stallMs} ms mid-block`,
      {
        peer: address,
        cause: err,
      },
    );
  }
  return new PeerFetchError(
    CONNECTION_ERRORS.has(code) ? 'connect' : 'http',
    `cannot fetch a block from peer ${address}: ${(err as Error).message}`,
    { peer: address, cause: err },
  );
}

function summarize(text: string): string {
  try {
    const parsed = JSON.parse(text) as { error?: { message?: string } };
    if (parsed.error?.message) return parsed.error.message.slice(0, 200);
  } catch {}
  return text.slice(0, 200);
}
