/**
 * Upload names that normalizePath accepts but that would be unusable once uploaded (QA sweep 2):
 * a segment longer than NAME_MAX (it could not be copied out of a mount onto a local file system)
 * and U+FFFD (what a decoder leaves of bytes that were not UTF-8: the file would be silently
 * renamed).
 */
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../functions/core/errors.ts';
import { MAX_NAME_BYTES, parseUploadRequest } from '../../../functions/core/upload-request.ts';

describe('parseUploadRequest on hostile names', () => {
  it('refuses a segment longer than 255 bytes of UTF-8, naming the limit', () => {
    const long = 'é'.repeat(128); // 256 bytes
    expect(() => parseUploadRequest({ path: `/d/${long}`, size: 1 }, 'data/')).toThrow(ValidationError);
    expect(() => parseUploadRequest({ path: `/${long}/f`, size: 1 }, 'data/')).toThrow(/255 bytes/);
    // Exactly at the limit is fine (ASCII and multi-byte).
    expect(parseUploadRequest({ path: `/d/${'a'.repeat(MAX_NAME_BYTES)}`, size: 1 }, 'data/').path).toBe(
      `/d/${'a'.repeat(255)}`,
    );
    expect(parseUploadRequest({ path: `/d/${'é'.repeat(127)}x`, size: 1 }, 'data/').size).toBe(1);
  });

  it('refuses U+FFFD (a name that was not valid UTF-8 on the way) with a fix in the message', () => {
    const err = (() => {
      try {
        parseUploadRequest({ path: '/d/a\uFFFDb', size: 1 }, 'data/');
      } catch (e) {
        return e as ValidationError;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ValidationError);
    expect(err?.code).toBe('invalid_path');
    expect(err?.message).toMatch(/U\+FFFD.*rename the file/);
  });

  it('refuses bidirectional embeddings, overrides and isolates (names that display as something else)', () => {
    for (const c of [
      '\u202A',
      '\u202B',
      '\u202C',
      '\u202D',
      '\u202E',
      '\u2066',
      '\u2067',
      '\u2068',
      '\u2069',
    ]) {
      expect(() => parseUploadRequest({ path: `/d/invoice${c}fdp.exe`, size: 1 }, 'data/')).toThrow(
        ValidationError,
      );
    }
    expect(() => parseUploadRequest({ path: '/d/invoice\u202Efdp.exe', size: 1 }, 'data/')).toThrow(
      /U\+202E, a bidirectional control character .* remove it/,
    );
    // The message itself shows the name escaped: printed raw it would display reordered too.
    expect(() => parseUploadRequest({ path: '/d/invoice\u202Efdp.exe', size: 1 }, 'data/')).toThrow(
      /^path "\/d\/invoice\\u202Efdp\.exe" contains/,
    );
    // Right-to-left text and its marks are names like any other.
    expect(parseUploadRequest({ path: '/d/\u05E9\u05DC\u05D5\u05DD\u200F.txt', size: 1 }, 'data/').size).toBe(
      1,
    );
  });
});
