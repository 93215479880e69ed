import { describe, expect, it } from 'vitest';
import type { Entry } from '../../../functions/core/api-types.ts';
import { NotFoundError } from '../../../functions/core/errors.ts';
import { ChangePoller } from '../../../mount-client/metadata/change-poller.ts';
import type { IndexApi } from '../../../mount-client/metadata/index-api.ts';
import { MemoryIndex } from '../../../mount-client/metadata/memory-index.ts';
import { MetadataCache } from '../../../mount-client/metadata/metadata-cache.ts';

function seeded(options: ConstructorParameters<typeof MemoryIndex>[0] = {}) {
  const index = new MemoryIndex(options);
  index.put('/a/one.txt', { size: 1, etag: 'e1', sha256: 's1' });
  index.put('/a/two.txt', { size: 22, etag: 'e2' });
  index.put('/a/sub/three.txt', { size: 333, etag: 'e3' });
  index.put('/top.bin', { size: 4, etag: 'e4' });
  index.resetCalls();
  return index;
}

describe('MetadataCache', () => {
  it('readdir pages through /v1/list and answers later lookups from the listing', async () => {
    // Prepare
    const index = seeded({ pageSize: 1 });
    const meta = new MetadataCache(index, { pageSize: 1 });
    // Act
    const children = await meta.readdir('/a');
    const one = await meta.stat('/a/one.txt');
    const sub = await meta.stat('/a/sub');
    const missing = meta.stat('/a/nope');
    // Assess
    expect(children.map((c) => c.path)).toEqual(['/a/one.txt', '/a/sub', '/a/two.txt']);
    expect(index.calls.list).toBe(3);
    expect(one).toMatchObject({ type: 'file', size: 1, etag: 'e1', sha256: 's1' });
    expect(sub.type).toBe('dir');
    await expect(missing).rejects.toBeInstanceOf(NotFoundError);
    expect(index.calls.resolve).toBe(0);
  });

  it('caches negative entries', async () => {
    const index = seeded();
    const meta = new MetadataCache(index);
    await expect(meta.stat('/ghost')).rejects.toBeInstanceOf(NotFoundError);
    await expect(meta.stat('/ghost')).rejects.toBeInstanceOf(NotFoundError);
    // Answered by one page of the parent's listing, then from memory.
    expect(index.calls.resolve + index.calls.list).toBe(1);
  });

  it('answers lookups in an unlisted small directory from one list page, not a resolve per file', async () => {
    const index = seeded();
    const meta = new MetadataCache(index);
    const names = (await index.list('/a', undefined, 1000)).entries.map((e) => e.name);
    index.calls.list = 0;
    await Promise.all(names.map((n) => meta.stat(`/a/${n}`)));
    await expect(meta.stat('/a/absent')).rejects.toBeInstanceOf(NotFoundError);
    expect(index.calls.list).toBe(1);
    expect(index.calls.resolve).toBe(0);
  });

  it('falls back to per-path resolves in a directory larger than one page', async () => {
    const index = seeded();
    const meta = new MetadataCache(index, { pageSize: 1 });
    await meta.stat('/a/sub');
    await meta.stat('/top.bin');
    const lists = index.calls.list;
    await meta.stat('/a/sub'); // cached
    expect(index.calls.list).toBe(lists);
    expect(index.calls.resolve).toBeGreaterThan(0);
  });

  it('collapses concurrent lookups of one path into one resolve', async () => {
    const index = seeded();
    const meta = new MetadataCache(index);
    const nodes = await Promise.all(Array.from({ length: 10 }, () => meta.stat('/top.bin')));
    expect(nodes.every((n) => n.etag === 'e4')).toBe(true);
    expect(index.calls.resolve + index.calls.list).toBe(1);
  });

  it('recognises directories when the resolver answers for files only', async () => {
    const index = seeded({ resolvesDirectories: false });
    const meta = new MetadataCache(index);
    expect((await meta.stat('/a/sub')).type).toBe('dir');
    await expect(meta.stat('/a/zzz')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('learns bucket and key prefix from a resolve, so listed files can be located', async () => {
    const index = seeded();
    const meta = new MetadataCache(index);
    const listed = (await meta.readdir('/a')).find((n) => n.path === '/a/two.txt')!;
    expect(meta.locate(listed)).toBeUndefined();
    await meta.resolveFile('/top.bin', false);
    expect(meta.locate(listed)).toEqual({ bucket: 'bucket', key: 'data/a/two.txt' });
  });

  it('the change poller invalidates exactly what changed, seeded from latest', async () => {
    // Prepare
    const index = seeded();
    const meta = new MetadataCache(index);
    const poller = new ChangePoller(index, [meta]);
    await poller.start();
    await meta.readdir('/a');
    await expect(meta.stat('/a/new.txt')).rejects.toBeInstanceOf(NotFoundError);
    await meta.stat('/top.bin');
    // Act
    index.put('/a/new.txt', { size: 5, etag: 'n1' });
    index.put('/top.bin', { size: 40, etag: 'e4b' });
    const seen = await poller.poll();
    // Assess
    expect(seen).toBe(2);
    expect(poller.position).toBe(6);
    expect((await meta.stat('/a/new.txt')).etag).toBe('n1');
    expect((await meta.stat('/top.bin')).size).toBe(40);
    expect((await meta.readdir('/a')).map((n) => n.path)).toContain('/a/new.txt');
    await poller.stop();
  });

  it('the change poller clears the cache instead of replaying a huge backlog', async () => {
    const index = seeded();
    const meta = new MetadataCache(index);
    const poller = new ChangePoller(index, [meta], { limit: 1, maxBacklogPages: 2 });
    await poller.start();
    await meta.readdir('/a');
    for (let i = 0; i < 5; i++) index.put(`/bulk/${i}`, { size: i, etag: `b${i}` });
    await poller.poll();
    expect(meta.stats().listings).toBe(0);
    expect(poller.position).toBe(9);
  });

  it('a lookup in flight during an invalidation does not store its stale answer', async () => {
    const index = seeded();
    const meta = new MetadataCache(index);
    const pending = meta.stat('/top.bin');
    meta.invalidate('/top.bin');
    await pending;
    index.put('/top.bin', { size: 99, etag: 'x' });
    expect((await meta.stat('/top.bin')).size).toBe(99);
  });

  it('lists subdirectories ahead of a tree walk, one level at a time, and answers statNow from memory', async () => {
    // Prepare: /w has three subdirectories, each with a file and a nested directory.
    const index = new MemoryIndex();
    for (const d of ['x', 'y', 'z']) {
      index.put(`/w/${d}/f.txt`, { size: 1, etag: `e-${d}` });
      index.put(`/w/${d}/deeper/g.txt`, { size: 2, etag: `g-${d}` });
    }
    index.resetCalls();
    const meta = new MetadataCache(index, { listAheadDirs: 2 });

    // Act: list /w, let the background listings finish.
    await meta.readdir('/w');
    await new Promise((r) => setTimeout(r, 20));

    // Assess: /w plus two subdirectories listed (the cap), none of the level below.
    expect(index.calls.list).toBe(3);
    const before = index.calls.list;
    await meta.readdir('/w/x'); // listed ahead: served from memory, and it moves the windows ...
    await new Promise((r) => setTimeout(r, 20));
    // ... two calls: /w/x/deeper (one level down) and /w/z (the sibling window slid past /w/x),
    // never /w/x or /w/y again.
    expect(index.calls.list).toBe(before + 2);
    await meta.readdir('/w/x/deeper');
    expect(index.calls.list).toBe(before + 2);
    expect(meta.statNow('/w/z/f.txt')).toMatchObject({ type: 'file', etag: 'e-z' }); // /w/z listed

    // statNow: listed entries and known-absent names from memory, unknown paths undefined.
    expect(meta.statNow('/w/x/f.txt')).toMatchObject({ type: 'file', etag: 'e-x' });
    expect(meta.statNow('/w/x/nope')).toBeNull();
    expect(meta.statNow('/elsewhere/file')).toBeUndefined();
    expect(index.calls.resolve).toBe(0);
  });

  it('a file and a directory of one name (keys `a` and `a/…` written straight to S3) list once, as the directory', async () => {
    // Prepare: the index lists both; the pair straddles a page boundary in the paged listing.
    const entry = (name: string, type: 'file' | 'dir'): Entry => ({
      path: `/w/${name}`,
      name,
      type,
      size: type === 'file' ? 5 : 10,
      mtime: '2024-05-01T12:00:00.000Z',
      ...(type === 'file' ? { etag: `e-${name}` } : { files: 1 }),
    });
    const pages: Record<string, Entry[]> = {
      '': [entry('a', 'file')],
      p2: [entry('a', 'dir'), entry('b', 'file')],
    };
    const api: IndexApi = {
      resolve: async () => {
        throw new NotFoundError('not used');
      },
      list: async (path, cursor, limit) => {
        if (path !== '/w') throw new NotFoundError(path);
        // limit 1000 (a lookup's one-page listing): everything on one page, file first.
        if (limit === 1000)
          return { path, entries: [entry('a', 'file'), entry('a', 'dir'), entry('b', 'file')] };
        const entries = pages[cursor ?? ''] ?? [];
        return { path, entries, ...(cursor ? {} : { nextCursor: 'p2' }) };
      },
      dates: async () => ({ dates: [] }),
      byDate: async (date) => ({ date, entries: [] }),
      changes: async () => ({ changes: [], nextSince: 0, latest: 0 }),
    };
    // Act
    const paged = await new MetadataCache(api, { pageSize: 1 }).readdir('/w');
    const small = new MetadataCache(api, { pageSize: 1000 });
    const looked = await small.stat('/w/a');
    const listed = await small.readdir('/w');
    // Assess
    expect(paged.map((n) => [n.path, n.type])).toEqual([
      ['/w/a', 'dir'],
      ['/w/b', 'file'],
    ]);
    expect(looked.type).toBe('dir');
    expect(listed.map((n) => [n.path, n.type])).toEqual([
      ['/w/a', 'dir'],
      ['/w/b', 'file'],
    ]);
  });

  it('a lookup by resolve in a directory too large to list answers such a name as the directory too', async () => {
    // Prepare: /w needs two list pages, so its lookups resolve the one path (no listing to look in).
    const index = new MemoryIndex({ pageSize: 2 });
    index.put('/w/a', { size: 3, etag: 'e-a' });
    index.put('/w/a/inner.txt', { size: 4, etag: 'e-in' });
    for (const n of ['b', 'c', 'd']) index.put(`/w/${n}`, { size: 1, etag: `e-${n}` });
    const meta = new MetadataCache(index, { pageSize: 2 });
    // Act
    const a = await meta.stat('/w/a');
    const inner = await meta.readdir('/w/a');
    const b = await meta.stat('/w/b');
    // Assess: resolved (not listed), and the directory, as the listing of /w shows it.
    expect(index.calls.resolve).toBeGreaterThanOrEqual(1);
    expect((await index.resolve('/w/a')).alsoDirectory).toBe(true);
    expect(a.type).toBe('dir');
    expect(inner.map((n) => n.path)).toEqual(['/w/a/inner.txt']);
    expect(b).toMatchObject({ type: 'file', etag: 'e-b' });
  });
});
