/**
 * A mount must see an overwrite (and a new upload) even when the server's caches still hold the
 * old answer: after a change from the journal, the next resolve/list carries `minSeq` and the
 * server answers fresh. The "server" here is a MemoryIndex behind a cache that is never
 * invalidated — the worst case of an indexer invalidation trailing the journal.
 */
import { describe, expect, it } from 'vitest';
import type { ChangesResponse, ListResponse, ResolveResponse } from '../../../functions/core/api-types.ts';
import { NotFoundError } from '../../../functions/core/errors.ts';
import { ChangePoller } from '../../../mount-client/metadata/change-poller.ts';
import type { IndexApi } from '../../../mount-client/metadata/index-api.ts';
import { MemoryIndex } from '../../../mount-client/metadata/memory-index.ts';
import { MetadataCache } from '../../../mount-client/metadata/metadata-cache.ts';

/** Serves the first answer per request forever, unless the caller passes minSeq. */
class StaleServer implements IndexApi {
  readonly resolved = new Map<string, ResolveResponse | NotFoundError>();
  readonly listed = new Map<string, ListResponse>();
  readonly minSeqs: Array<[string, number]> = [];
  constructor(private readonly index: MemoryIndex) {}

  async resolve(path: string, options?: { presign?: boolean; minSeq?: number }): Promise<ResolveResponse> {
    if (options?.minSeq !== undefined) this.minSeqs.push([path, options.minSeq]);
    const cached = options?.minSeq === undefined ? this.resolved.get(path) : undefined;
    const answer =
      cached ?? (await this.index.resolve(path, options).catch((e: unknown) => e as NotFoundError));
    this.resolved.set(path, answer);
    if (answer instanceof Error) throw answer;
    return answer;
  }

  async list(
    path: string,
    cursor?: string,
    limit?: number,
    options?: { minSeq?: number },
  ): Promise<ListResponse> {
    if (options?.minSeq !== undefined) this.minSeqs.push([path, options.minSeq]);
    const key = `${path}|${cursor ?? ''}|${limit ?? ''}`;
    const cached = options?.minSeq === undefined ? this.listed.get(key) : undefined;
    const answer = cached ?? (await this.index.list(path, cursor, limit));
    this.listed.set(key, answer);
    return answer;
  }

  dates = () => this.index.dates();
  byDate = (date: string, cursor?: string) => this.index.byDate(date, cursor);
  changes = (since: number, limit?: number) => this.index.changes(since, limit);
}

describe('mount freshness after changes', () => {
  it('sees an overwrite and a new upload although the server cache is stale', async () => {
    const index = new MemoryIndex();
    index.put('/a/f.txt', { size: 1, etag: 'v1' });
    const server = new StaleServer(index);
    const meta = new MetadataCache(server);
    const poller = new ChangePoller(server, [meta]);
    await poller.start();
    expect(await meta.stat('/a/f.txt')).toMatchObject({ etag: 'v1' });
    await expect(meta.stat('/a/new.txt')).rejects.toBeInstanceOf(NotFoundError);
    expect((await meta.readdir('/a')).map((n) => n.path)).toEqual(['/a/f.txt']);

    index.put('/a/f.txt', { size: 2, etag: 'v2' });
    index.put('/a/new.txt', { size: 3, etag: 'n1' });
    // Without minSeq the server still answers the old version (the race being fixed).
    const stale = await server.list('/a', undefined, 1000);
    expect(stale.entries.find((e) => e.name === 'f.txt')?.etag).toBe('v1');
    await poller.poll();

    expect(await meta.stat('/a/f.txt')).toMatchObject({ etag: 'v2', size: 2 });
    expect(await meta.stat('/a/new.txt')).toMatchObject({ etag: 'n1' });
    expect((await meta.readdir('/a')).map((n) => n.path)).toEqual(['/a/f.txt', '/a/new.txt']);
    const seqs = new Map(server.minSeqs);
    expect(seqs.get('/a')).toBe(3); // the newest change beneath it
    // Once the fresh answer is cached, nothing is fetched again and no more minSeq is sent.
    const asked = server.minSeqs.length;
    expect(await meta.stat('/a/f.txt')).toMatchObject({ etag: 'v2' });
    expect(server.minSeqs.length).toBe(asked);
    await poller.stop();
  });

  it('keeps following the journal in one tick past pages whose changes were all filtered out', async () => {
    // An older server filtering a prefix-limited token's changes after paging: empty pages that
    // still advance nextSince, with the token's change further on.
    const pages: Record<number, ChangesResponse> = {
      0: { changes: [], nextSince: 10, latest: 30 },
      10: { changes: [], nextSince: 20, latest: 30 },
      20: {
        changes: [{ seq: 30, op: 'put', path: '/team-a/x', at: '2024-01-01T00:00:00Z' }],
        nextSince: 30,
        latest: 30,
      },
    };
    const index = new MemoryIndex();
    const api: IndexApi = {
      resolve: (p) => index.resolve(p),
      list: (p, c, l) => index.list(p, c, l),
      dates: () => index.dates(),
      byDate: (d) => index.byDate(d),
      changes: async (since) => pages[since] ?? { changes: [], nextSince: since, latest: 30 },
    };
    const seen: string[] = [];
    const poller = new ChangePoller(api, [{ invalidate: (p) => seen.push(p), clear: () => undefined }]);
    expect(await poller.poll()).toBe(1);
    expect(seen).toEqual(['/team-a/x']);
    expect(poller.position).toBe(30);
    // A page that makes no progress ends the tick instead of spinning.
    expect(await poller.poll()).toBe(0);
  });
});
