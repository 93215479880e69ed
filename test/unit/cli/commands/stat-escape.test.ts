/**
 * Review finding (session 5): `strata stat` escaped invisible and reordering characters in the
 * `path` line only; the same name printed raw in `location` (the S3 key), in the also-a-directory
 * note, and in user metadata written with the object, so the output still displayed reordered.
 */
import { describe, expect, it } from 'vitest';
import type { ResolveResponse } from '../../../../functions/core/api-types.ts';
import { formatStat } from '../../../../mount-client/cli/commands/stat.ts';

describe('strata stat output', () => {
  it('escapes U+202E and zero-width characters on every line', () => {
    // Prepare
    const r: ResolveResponse = {
      path: '/in/invoice\u202Efdp.exe',
      name: 'invoice\u202Efdp.exe',
      type: 'file',
      size: 4,
      mtime: '2024-05-01T12:00:00.000Z',
      etag: 'e',
      bucket: 'b',
      key: 'data/in/invoice\u202Efdp.exe',
      state: 'active',
      alsoDirectory: true,
      metadata: { note: 'ok\u200Bay' },
    };
    // Act
    const out = formatStat(r);
    // Assess
    expect(out).not.toMatch(/[\u200B\u202E]/);
    expect(out).toContain('location      s3://b/data/in/invoice\\u{202E}fdp.exe');
    expect(out).toContain('path          /in/invoice\\u{202E}fdp.exe');
    expect(out).toContain('meta.note     ok\\u{200B}ay');
  });
});
