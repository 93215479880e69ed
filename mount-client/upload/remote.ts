/**
 * Remote side of `strata sync`: every file under a remote directory (through /v1/list, never S3),
 * and deletion through DELETE /v1/files.
 */
import type { ListResponse } from '../../functions/core/api-types.ts';
import { NotFoundError } from '../../functions/core/errors.ts';
import type { ApiClient } from '../api/client.ts';

export async function listRemoteFiles(api: ApiClient, dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const pending = [dir];
  while (pending.length > 0) {
    const d = pending.pop() as string;
    let cursor: string | undefined;
    do {
      let page: ListResponse;
      try {
        page = await api.request<ListResponse>('GET', '/v1/list', {
          query: { path: d, cursor, limit: 1000 },
        });
      } catch (err) {
        if (err instanceof NotFoundError) break;
        throw err;
      }
      for (const e of page.entries) {
        if (e.type === 'dir') pending.push(e.path);
        else out.set(e.path, e.size);
      }
      cursor = page.nextCursor;
    } while (cursor);
  }
  return out;
}

export async function deleteRemote(api: ApiClient, path: string): Promise<void> {
  await api.request('DELETE', '/v1/files', { query: { path } });
}
