/**
 * Review finding (session 5): a file that is also a directory (keys under `a/` next to a key `a`)
 * is the directory in the mount (lookup, listings). resolveFile — open() of a by-date entry whose
 * target is that file, or re-signing the URL of a handle opened before the directory appeared —
 * cached the answer as a file node at the path, so from then on the mount answered getattr of
 * the path as a file while its parent's listing showed the directory.
 */
import { describe, expect, it } from 'vitest';
import { MemoryIndex } from '../../../mount-client/metadata/memory-index.ts';
import { MetadataCache } from '../../../mount-client/metadata/metadata-cache.ts';

describe('MetadataCache: a file that is also a directory', () => {
  it('stays the directory after resolveFile reads the file behind it (open, re-sign)', async () => {
    // Prepare: /w needs two list pages, so its lookups go through resolve.
    const index = new MemoryIndex({ pageSize: 2 });
    index.put('/w/a', { size: 3, etag: 'e-a' });
    index.put('/w/a/inner.txt', { size: 4, etag: 'e-in' });
    for (const n of ['b', 'c', 'd']) index.put(`/w/${n}`, { size: 1, etag: `e-${n}` });
    const meta = new MetadataCache(index, { pageSize: 2 });
    expect((await meta.stat('/w/a')).type).toBe('dir');
    // Act: the file's bytes are asked for (a presigned URL for an open handle).
    const file = await meta.resolveFile('/w/a', true);
    const after = await meta.stat('/w/a');
    // Assess: the caller gets the file; the mount keeps answering the path as the directory.
    expect(file).toMatchObject({ type: 'file', etag: 'e-a', size: 3 });
    expect(file.url).toBeDefined();
    expect(after.type).toBe('dir');
    expect(meta.statNow('/w/a')?.type).toBe('dir');
    expect((await meta.readdir('/w/a')).map((n) => n.path)).toEqual(['/w/a/inner.txt']);
  });
});
