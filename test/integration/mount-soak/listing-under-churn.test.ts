/**
 * Long-running mounts under a steady stream of changes: a directory listing in flight while an
 * unrelated path changes must still be cached. With one global epoch, every change anywhere
 * discarded every listing in flight, so a large directory whose listing takes longer than the gap
 * between a producer's writes was never cached: each readdir paged it again, and each stat of its
 * entries cost an API resolve (found by bench/mount/soak.ts as 5,000+ metadata entries and
 * per-entry resolves for a 5,000-entry directory). Real local stack and API; the test only holds
 * the second list page back until the unrelated change has been applied.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../../mount-client/api/client.ts';
import { httpIndexApi, type IndexApi } from '../../../mount-client/metadata/index-api.ts';
import { MetadataCache } from '../../../mount-client/metadata/metadata-cache.ts';
import { type Backend, startBackend } from '../../fuse/support/backend.ts';

let backend: Backend;
let client: ApiClient;

beforeAll(async () => {
  backend = await startBackend();
  client = new ApiClient({ apiUrl: backend.apiUrl, token: backend.token });
  await backend.indexOnly([
    ...Array.from({ length: 250 }, (_, i) => ({
      path: `/big/e${String(i).padStart(3, '0')}`,
      size: 1,
      etag: `e${i}`,
    })),
    { path: '/other/x', size: 1, etag: 'x' },
  ]);
});
afterAll(async () => {
  await client?.close();
  await backend?.stop();
});

describe('a listing in flight during changes elsewhere', () => {
  it('is cached, while one in flight during a change under it is not', async () => {
    // Prepare: the real API, with page 2 of /big held until the test lets it go
    const real = httpIndexApi(client);
    let release!: () => void;
    let gate = new Promise<void>((r) => {
      release = r;
    });
    let lists = 0;
    const api: IndexApi = {
      ...real,
      list: async (path, cursor, limit, options) => {
        lists++;
        if (path === '/big' && cursor) await gate;
        return real.list(path, cursor, limit, options);
      },
    };
    const meta = new MetadataCache(api, { pageSize: 100 });

    // Act: list /big; an unrelated path changes while its second page is held
    const listing = meta.readdir('/big');
    meta.invalidate('/other/x');
    release();
    expect(await listing).toHaveLength(250);

    // Assess: cached — stats and a second readdir make no API call
    const before = lists;
    expect(meta.statNow('/big/e007')?.type).toBe('file');
    expect(await meta.readdir('/big')).toHaveLength(250);
    expect(lists).toBe(before);

    // Act: a change under /big itself while a new listing is in flight
    meta.invalidate('/big/e001');
    gate = new Promise<void>((r) => {
      release = r;
    });
    const second = meta.readdir('/big');
    meta.invalidate('/big/e002');
    release();
    await second;

    // Assess: that answer may be stale, so it is not cached
    expect(meta.statNow('/big/e007')).toBeUndefined();
  });
});
