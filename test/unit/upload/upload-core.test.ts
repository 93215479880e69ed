import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../functions/core/errors.ts';
import { partRange, validatePartList } from '../../../functions/core/upload-parts.ts';
import {
  GiB,
  MAX_PARTS,
  MIN_PART_BYTES,
  MiB,
  partLength,
  planUpload,
  TiB,
} from '../../../functions/core/upload-plan.ts';
import { parseSha256, parseUploadRequest, requestHash } from '../../../functions/core/upload-request.ts';

const opts = { multipartThreshold: 64 * MiB, preferredPartSize: 8 * MiB };

describe('planUpload', () => {
  it('single up to the threshold, multipart above it', () => {
    expect(planUpload(64 * MiB, opts)).toEqual({ mode: 'single', size: 64 * MiB });
    expect(planUpload(64 * MiB + 1, opts)).toEqual({
      mode: 'multipart',
      size: 64 * MiB + 1,
      partSize: 8 * MiB,
      partCount: 9,
    });
  });

  it('grows the part size to stay within 10,000 parts, up to 5 TiB', () => {
    const p = planUpload(5 * TiB, opts);
    expect(p.mode).toBe('multipart');
    if (p.mode !== 'multipart') return;
    expect(p.partCount).toBeLessThanOrEqual(MAX_PARTS);
    expect(p.partSize % MiB).toBe(0);
  });

  it('property: parts cover the size exactly, ≥ 5 MiB each but the last, ≤ 10,000', () => {
    fc.assert(
      fc.property(fc.integer({ min: 64 * MiB + 1, max: 5 * TiB }), (size) => {
        const p = planUpload(size, opts);
        if (p.mode !== 'multipart') return false;
        let total = 0;
        for (const n of [1, p.partCount]) expect(partLength(size, p.partSize, n)).toBeGreaterThan(0);
        total = p.partSize * (p.partCount - 1) + partLength(size, p.partSize, p.partCount);
        return (
          total === size && p.partCount <= MAX_PARTS && p.partSize >= MIN_PART_BYTES && p.partSize <= 5 * GiB
        );
      }),
    );
  });
});

describe('parseUploadRequest', () => {
  it('normalizes the path to NFC and derives the key', () => {
    const r = parseUploadRequest({ path: '/Cafe\u0301/a b+c%#?.txt', size: 3 }, 'data/');
    expect(r.path).toBe('/Caf\u00e9/a b+c%#?.txt');
    expect(r.key).toBe('data/Caf\u00e9/a b+c%#?.txt');
    expect(r.contentType).toBe('application/octet-stream');
  });

  it('accepts hex or base64 sha256 and rejects anything else precisely', () => {
    const hex = 'ab'.repeat(32);
    expect(parseSha256(hex.toUpperCase())).toBe(hex);
    expect(parseSha256(Buffer.from(hex, 'hex').toString('base64'))).toBe(hex);
    expect(() => parseSha256('xyz')).toThrow(/64 hex characters/);
  });

  it.each([
    [{ path: '/a', size: 0 }, /at least 1 byte/],
    [{ path: '/a', size: 5 * TiB + 1 }, /5 TiB/],
    [{ path: '/a', size: '3' }, /integer/],
    [{ path: '/a', size: 1, contentType: 'nope' }, /media type/],
    [{ path: '/a', size: 1, date: '2024-02-30' }, /calendar date/],
    [{ path: '/a', size: 1, metadata: { 'Bad Name': 'x' } }, /metadata name/],
    [{ path: '/a', size: 1, metadata: { sha256: 'f'.repeat(64) } }, /reserved.*"sha256" field/],
    [{ path: '/a', size: 1, metadata: { 'strata-date': '2024-01-01' } }, /reserved.*"date" field/],
    [{ path: '/a', size: 1, metadata: { big: 'x'.repeat(3000) } }, /2048 bytes/],
    [[1], /JSON object/],
  ])('rejects %j', (body, message) => {
    expect(() => parseUploadRequest(body, 'data/')).toThrow(ValidationError);
    expect(() => parseUploadRequest(body, 'data/')).toThrow(message);
  });

  it('requestHash is the same for NFC and NFD spellings and differs for other sizes', () => {
    const a = requestHash(parseUploadRequest({ path: '/Caf\u00e9', size: 1 }, ''));
    const b = requestHash(parseUploadRequest({ path: '/Cafe\u0301', size: 1 }, ''));
    const c = requestHash(parseUploadRequest({ path: '/Caf\u00e9', size: 2 }, ''));
    expect(a).toBe(b);
    expect(a).not.toBe(c);
  });
});

describe('part lists', () => {
  it('accepts exactly 1..n in order and names what is missing or out of order', () => {
    expect(
      validatePartList(
        [
          { partNumber: 1, etag: 'a' },
          { partNumber: 2, etag: 'b' },
        ],
        2,
      ),
    ).toHaveLength(2);
    expect(() => validatePartList([{ partNumber: 1, etag: 'a' }], 3)).toThrow(/missing part\(s\) 2, 3/);
    expect(() =>
      validatePartList(
        [
          { partNumber: 2, etag: 'a' },
          { partNumber: 1, etag: 'b' },
        ],
        2,
      ),
    ).toThrow(/in order/);
    expect(() => validatePartList([{ partNumber: 1, etag: '' }], 1)).toThrow(/ETag/);
  });

  it('partRange clamps to the part count and validates from/count', () => {
    expect(partRange('9', '5', 10, 100)).toEqual([9, 10]);
    expect(() => partRange('0', undefined, 10, 100)).toThrow(/from/);
    expect(() => partRange('1', '101', 10, 100)).toThrow(/count/);
  });
});
