/**
 * The port the metadata layer reads the index through (style.md: the user of a port defines it).
 * Five calls, each a thin wrapper over HTTP API v1; `httpIndexApi` adapts ApiClient, and
 * memory-index.ts is the in-memory implementation used by unit tests.
 */
import type {
  ByDateResponse,
  ChangesResponse,
  DatesResponse,
  ListResponse,
  ResolveResponse,
} from '../../functions/core/api-types.ts';
import type { ApiClient } from '../api/client.ts';

export interface IndexApi {
  /**
   * Throws NotFoundError when nothing lives at `path`. `minSeq`: a change-journal sequence the
   * caller has seen for this path; the answer must include it, so the server skips its caches.
   */
  resolve(path: string, options?: { presign?: boolean; minSeq?: number }): Promise<ResolveResponse>;
  list(path: string, cursor?: string, limit?: number, options?: { minSeq?: number }): Promise<ListResponse>;
  dates(): Promise<DatesResponse>;
  byDate(date: string, cursor?: string): Promise<ByDateResponse>;
  changes(since: number, limit?: number): Promise<ChangesResponse>;
}

export function httpIndexApi(client: ApiClient): IndexApi {
  return {
    resolve: (path, options) =>
      client.request<ResolveResponse>('GET', '/v1/resolve', {
        query: { path, presign: options?.presign ? 1 : undefined, minSeq: options?.minSeq },
      }),
    list: (path, cursor, limit, options) =>
      client.request<ListResponse>('GET', '/v1/list', {
        query: { path, cursor, limit, minSeq: options?.minSeq },
      }),
    dates: () => client.request<DatesResponse>('GET', '/v1/dates'),
    byDate: (date, cursor) =>
      client.request<ByDateResponse>('GET', `/v1/by-date/${encodeURIComponent(date)}`, { query: { cursor } }),
    changes: (since, limit) =>
      client.request<ChangesResponse>('GET', '/v1/changes', { query: { since, limit } }),
  };
}
