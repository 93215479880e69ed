/**
 * `strata ls [path] [-l] [--json]` — list a directory from the index (never S3 LIST), paging
 * through /v1/list. Directories print with a trailing `/`.
 */
import type { Entry, ListResponse } from '../../../functions/core/api-types.ts';
import { ValidationError } from '../../../functions/core/errors.ts';
import type { ApiClient } from '../../api/client.ts';
import type { RegisterCommand } from '../context.ts';
import { displayName, formatBytes, formatTime } from './format.ts';

/** 1,000 entries per request: the API's maximum page, so a 10,000-entry directory is 10 round trips. */
const PAGE = 1000;

/** Every entry of `path`, page by page; a file path says to use `strata stat` (the API says /v1/resolve). */
export async function listAll(api: Pick<ApiClient, 'request'>, path: string): Promise<Entry[]> {
  const entries: Entry[] = [];
  let cursor: string | undefined;
  try {
    do {
      const page: ListResponse = await api.request('GET', '/v1/list', {
        query: { path, limit: PAGE, cursor },
      });
      entries.push(...page.entries);
      cursor = page.nextCursor;
    } while (cursor);
  } catch (err) {
    if (err instanceof ValidationError && err.message.startsWith('not a directory'))
      throw new ValidationError(`${path} is a file, not a directory; use \`strata stat ${path}\``, {
        cause: err,
      });
    throw err;
  }
  return entries;
}

export const register: RegisterCommand = (program, ctx) => {
  program
    .command('ls')
    .description('list a directory from the index (names in byte order; directories end with /)')
    .argument('[path]', 'directory to list, e.g. /datasets', '/')
    .option('-l, --long', 'long format: type, size, modification time, name')
    .option('--json', 'print the entries as JSON')
    .action(async (path: string, opts: { long?: boolean; json?: boolean }) => {
      const entries = await listAll(ctx.api(), path);
      ctx.print(
        { path, entries },
        () => {
          if (!opts.long) return entries.map(shown).join('\n');
          const sizes = entries.map((e) => formatBytes(e.size));
          const width = Math.max(0, ...sizes.map((s) => s.length));
          return entries
            .map(
              (e, i) =>
                `${e.type === 'dir' ? 'd' : '-'} ${sizes[i]?.padStart(width)}  ${formatTime(e.mtime)}  ${shown(e)}`,
            )
            .join('\n');
        },
        opts.json ?? ctx.flags.json,
      );
    });
};

/** A listed name as printed: directories end with `/`; invisible characters escaped (displayName). */
function shown(e: Entry): string {
  return e.type === 'dir' ? `${displayName(e.name)}/` : displayName(e.name);
}
