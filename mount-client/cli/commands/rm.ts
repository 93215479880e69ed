/**
 * `strata rm <path...>` — delete files. S3 deletes them at once; listings follow within about a
 * second, when the indexer processes the ObjectRemoved events.
 */
import type { RegisterCommand } from '../context.ts';

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
          await api.request('DELETE', '/v1/files', { query: { path } });
          results.push({ path, deleted: true });
        } catch (err) {
          results.push({ path, deleted: false, error: (err as Error).message });
        }
      }
      ctx.print(
        results,
        () =>
          results
            .map((r) => (r.deleted ? `deleted ${r.path}` : `strata: cannot delete ${r.path}: ${r.error}`))
            .join('\n'),
        opts.json ?? ctx.flags.json,
      );
      if (results.some((r) => !r.deleted)) process.exitCode = 1;
    });
};
