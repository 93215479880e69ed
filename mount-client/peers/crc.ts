/**
 * Whole-block crc32c from a block's sub-block crc32c table, without touching the bytes.
 *
 * The wire carries one crc32c per block (wire.ts), while caches keep one per 128 KiB sub-block
 * (block-cache/format.ts). crc(A‖B) = crc(A)·x^(8·|B|) ⊕ crc(B) in GF(2)[x] mod the CRC-32C polynomial
 * (the pre/post inversion cancels out), so the owner derives the block's crc32c from the table its
 * cache already holds in ~64 small polynomial products instead of a pass over 8 MiB, and the
 * requester checksums each sub-block as it arrives and gets both the table (for its own cache) and
 * the whole-block crc32c (to check against the owner's) from that one pass. Same algorithm as zlib's
 * crc32_combine (multmodp/x2nmodp), with the reflected Castagnoli polynomial.
 */
import { crc32c } from '@node-rs/crc32';

const POLY = 0x82f63b78; // CRC-32C (Castagnoli), reflected

/** a·b mod P (reflected bit order, as the CRC registers are). */
function multModP(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** x^(2^k) mod P for k = 0..31. */
const X2N = (() => {
  const t = new Array<number>(32);
  let p = 0x40000000; // x^1
  t[0] = p;
  for (let k = 1; k < 32; k++) t[k] = p = multModP(p, p);
  return t;
})();

/** x^(8·bytes) mod P: the operator that shifts a crc past `bytes` bytes of zeros. */
function shiftFor(bytes: number): number {
  let p = 0x80000000; // x^0
  let k = 3; // 8 bits per byte: start at x^(2^3)
  for (let n = bytes; n > 0; n = Math.floor(n / 2), k++) {
    if (n % 2) p = multModP(X2N[k & 31] as number, p);
  }
  return p;
}

const shifts = new Map<number, number>();

/** crc32c(A‖B) from crc32c(A), crc32c(B) and |B|. */
export function crc32cCombine(crcA: number, crcB: number, lengthB: number): number {
  let op = shifts.get(lengthB);
  if (op === undefined) {
    op = shiftFor(lengthB);
    // Blocks have two sub-block lengths (full and the tail); a handful of entries at most.
    if (shifts.size < 64) shifts.set(lengthB, op);
  }
  return (multModP(op, crcA) ^ crcB) >>> 0;
}

/** crc32c of a payload of `length` bytes from the crc32c of each of its `sub`-byte sub-blocks. */
export function crcFromTable(crcs: Uint32Array, sub: number, length: number): number {
  let crc = 0;
  for (let i = 0; i < crcs.length; i++) {
    crc = crc32cCombine(crc, crcs[i] as number, Math.min(sub, length - i * sub));
  }
  return crc;
}

/**
 * Sub-block crc32c of a byte stream fed in arbitrary chunks: one pass, chunk boundaries need not
 * line up with sub-blocks.
 */
export class SubBlockCrc {
  readonly crcs: Uint32Array;
  private i = 0;
  private filled = 0;
  private crc = 0;

  constructor(
    private readonly sub: number,
    length: number,
  ) {
    this.crcs = new Uint32Array(Math.ceil(length / sub));
  }

  update(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      const take = Math.min(this.sub - this.filled, chunk.length - at);
      this.crc = crc32c(take === chunk.length ? chunk : chunk.subarray(at, at + take), this.crc);
      this.filled += take;
      at += take;
      if (this.filled === this.sub) this.flush();
    }
  }

  /** The table, once every byte was fed (closes a short last sub-block). */
  finish(): Uint32Array {
    if (this.filled > 0) this.flush();
    return this.crcs;
  }

  private flush(): void {
    if (this.i < this.crcs.length) this.crcs[this.i] = this.crc;
    this.i++;
    this.crc = 0;
    this.filled = 0;
  }
}
