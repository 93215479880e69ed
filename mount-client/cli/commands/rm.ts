/**
 * `strata rm <path...>` — delete files. S3 deletes them at once; listings follow within about a
 * second, when the indexer processes the ObjectRemoved events.
 */
import type { ResolveResponse } from '../../../functions/core/api-types.ts';
import { NotFoundError } from '../../../functions/core/errors.ts';
import type { ApiClient } from '../../api/client.ts';
import type { RegisterCommand } from '../context.ts';

/**
 * Deletes one file. The API answers "not found" for a directory as well (it deletes files only),
 * which read as if the path did not exist; a directory is named as one, with the way to its files.
 */
export async function deleteFile(api: Pick<ApiClient, 'request'>, path: string): Promise<void> {
  try {
    await api.request('DELETE', '/v1/files', { query: { path } });
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
    const r = await api
      .request<ResolveResponse>('GET', '/v1/resolve', { query: { path } })
      .catch(() => undefined);
    if (r?.type === 'dir')
      throw new Error(
        `${path} is a directory; strata rm deletes files (list them with \`strata ls ${path}\`)`,
        { cause: err },
      );
    throw err;
  }
}

export const register: RegisterCommand = (program, ctx) => {
  program
    .command('rm')
    .description('delete files (S3 first; the index follows the S3 event within ~1 s)')
    .argument('<paths...>', 'absolute paths of files to delete')
    .option('--json', 'print JSON')
    .action(async (paths: string[], opts: { json?: boolean }) => {
      const api = ctx.api();
      const results: Array<{ path: string; deleted: boolean; error?: string }> = [];
      for (const path of paths) {
        try {
          await deleteFile(api, path);
          results.push({ path, deleted: true });
        } catch (err) {
          results.push({ path, deleted: false, error: (err as Error).message });
        }
      }
      const json = opts.json ?? ctx.flags.json;
      ctx.print(
        results,
        () =>
          results
            .filter((r) => r.deleted)
            .map((r) => `deleted ${r.path}`)
            .join('\n'),
        json,
      );
      // Failures go to stderr, like every other error of the CLI (stdout stays the list of deletions).
      if (!json)
        for (const r of results)
          if (!r.deleted) process.stderr.write(`strata: cannot delete ${r.path}: ${r.error}\n`);
      if (results.some((r) => !r.deleted)) process.exitCode = 1;
    });
};
