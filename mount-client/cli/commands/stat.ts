/** `strata stat <path> [--json]` — what the index knows about a file or directory. */
import type { ResolveResponse } from '../../../functions/core/api-types.ts';
import type { RegisterCommand } from '../context.ts';
import { displayName, formatBytes } from './format.ts';

export const register: RegisterCommand = (program, ctx) => {
  program
    .command('stat')
    .description('show the indexed metadata of a file or directory (size, etag, version, dates)')
    .argument('<path>', 'absolute path, e.g. /datasets/a.csv')
    .option('--json', 'print JSON')
    .action(async (path: string, opts: { json?: boolean }) => {
      const r: ResolveResponse = await ctx.api().request('GET', '/v1/resolve', { query: { path } });
      ctx.print(r, () => formatStat(r), opts.json ?? ctx.flags.json);
    });
};

/** The human form of `strata stat`: one `name value` line per known field. */
export function formatStat(r: ResolveResponse): string {
  const lines: Array<[string, string | undefined]> = [
    ['path', r.path],
    ['type', r.type],
    ['size', `${r.size} (${formatBytes(r.size)})`],
    ['files', r.files === undefined ? undefined : String(r.files)],
    ['modified', r.mtime],
    ['state', r.state],
    ['etag', r.etag],
    ['version', r.versionId],
    ['sha256', r.sha256],
    ['content-type', r.contentType],
    ['date', r.date],
    ['location', `s3://${r.bucket}/${r.key}`],
    [
      'note',
      r.alsoDirectory
        ? `keys under ${r.path}/ make it a directory too; listings and mounts show the directory (strata ls ${r.path})`
        : undefined,
    ],
    ...Object.entries(r.metadata ?? {}).map(([k, v]) => [`meta.${k}`, v] as [string, string]),
  ];
  // Every line is escaped, not only `path`: the key in `location`, the note and user metadata
  // (set by whoever wrote the object) carry the same names and can reorder the terminal line.
  return lines
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => displayName(`${k.padEnd(13)} ${v}`))
    .join('\n');
}
