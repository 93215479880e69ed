import { describe, expect, it } from 'vitest';
import type { ResolveResponse } from '../../../../functions/core/api-types.ts';
import { formatStat } from '../../../../mount-client/cli/commands/stat.ts';

const file: ResolveResponse = {
  path: '/s3/x',
  name: 'x',
  type: 'file',
  size: 4,
  mtime: '2024-05-01T12:00:00.000Z',
  etag: '"e"',
  bucket: 'b',
  key: 'data/s3/x',
  state: 'active',
};

describe('strata stat', () => {
  it('prints one line per known field, skipping absent ones', () => {
    const out = formatStat(file);
    expect(out.split('\n')).toContain('size          4 (4 B)');
    expect(out).toContain('location      s3://b/data/s3/x');
    expect(out).not.toMatch(/^(version|note) /m);
  });

  it('a file that is also a directory says so, and where the directory is listed', () => {
    expect(formatStat({ ...file, alsoDirectory: true })).toContain(
      'note          keys under /s3/x/ make it a directory too; listings and mounts show the directory (strata ls /s3/x)',
    );
  });
});
