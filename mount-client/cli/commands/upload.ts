/**
 * `strata upload <local...> [--to /remote/dir]`: uploads files and directories through presigned
 * URLs (see mount-client/upload/uploader.ts). Exit code 1 and a list of failed files when any fails.
 */
import type { Command } from 'commander';
import { normalizePath } from '../../../functions/core/paths.ts';
import type { FilterOptions } from '../../upload/ignore-rules.ts';
import { formatBytes, progressView } from '../../upload/progress-bar.ts';
import { ResumeStore } from '../../upload/resume-state.ts';
import { scanArguments } from '../../upload/scan.ts';
import { DEFAULT_CONCURRENCY, Uploader, type UploadSummary } from '../../upload/uploader.ts';
import type { CliContext, RegisterCommand } from '../context.ts';
import { displayName } from './format.ts';

export interface TransferFlags {
  to: string;
  concurrency: string;
  exclude: string[];
  defaultExcludes: boolean;
  json?: boolean;
  stateDir?: string;
  progress: boolean;
}

/** Options shared by upload and sync. */
export function addTransferOptions(cmd: Command): Command {
  return cmd
    .option(
      '--concurrency <n>',
      'simultaneous PUTs (whole small files or parts of large ones)',
      String(DEFAULT_CONCURRENCY),
    )
    .option('--exclude <pattern>', 'skip files matching a .gitignore-style pattern (repeatable)', collect, [])
    .option(
      '--no-default-excludes',
      'do not skip node_modules/, .git/, *.log, .env*, dist/, build/, … by default',
    )
    .option(
      '--state-dir <dir>',
      'where resume state of interrupted large uploads is kept (default: $XDG_STATE_HOME/strata/uploads, else ~/.local/state/strata/uploads)',
    )
    .option('--no-progress', 'no progress bar even on a terminal')
    .option('--json', 'print a JSON summary');
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function filterOf(flags: TransferFlags): FilterOptions {
  return { defaultExcludes: flags.defaultExcludes, excludes: flags.exclude };
}

export function parseConcurrency(raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 256)
    throw new Error(`--concurrency must be an integer in 1..256, got ${raw}`);
  return n;
}

export function remoteDirOf(raw: string): string {
  return normalizePath(raw, { directory: true });
}

export function makeUploader(ctx: CliContext, flags: TransferFlags, json: boolean) {
  const view = progressView(
    flags.progress && !json,
    'run the same command again: unchanged files are skipped and large files resume with their missing parts',
  );
  const uploader = new Uploader({
    api: ctx.api(),
    concurrency: parseConcurrency(flags.concurrency),
    resume: new ResumeStore(flags.stateDir),
    onProgress: (p) => view.update(p),
  });
  return { uploader, view };
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is quoted
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * A hostile local name (newline, ESC…) is quoted, so it cannot forge lines or drive the terminal;
 * invisible and reordering characters (U+202E…) are escaped, so it displays as what it is.
 */
function shown(name: string): string {
  return displayName(CONTROL.test(name) ? JSON.stringify(name) : name);
}

export function reportSummary(
  ctx: CliContext,
  summary: UploadSummary,
  json: boolean,
  extra: Record<string, unknown> = {},
  /** Local entries the scan could not even name (ScanResult.unreadable): failures too. */
  unreadable: Array<{ local: string; reason: string }> = [],
): void {
  const failed = [
    ...summary.results.filter((r) => r.status === 'failed'),
    ...unreadable.map((u) => ({ local: u.local, remote: undefined, reason: u.reason })),
  ];
  ctx.print(
    {
      files: summary.files,
      uploaded: summary.uploaded,
      skipped: summary.skipped,
      failed: summary.failed + unreadable.length,
      bytesUploaded: summary.bytesUploaded,
      seconds: Number(summary.seconds.toFixed(3)),
      failures: failed.map((r) => ({ local: r.local, remote: r.remote, reason: r.reason })),
      ...extra,
    },
    () => {
      const rate = summary.seconds > 0 ? summary.bytesUploaded / summary.seconds : 0;
      const lines = [
        `${summary.uploaded} uploaded, ${summary.skipped} skipped (unchanged or empty), ${summary.failed + unreadable.length} failed — ${formatBytes(summary.bytesUploaded)} in ${summary.seconds.toFixed(1)} s (${formatBytes(rate)}/s)`,
      ];
      for (const r of failed)
        lines.push(
          `  failed: ${shown(r.local)}${r.remote === undefined ? '' : ` → ${shown(r.remote)}`}: ${displayName(r.reason ?? 'unknown error')}`,
        );
      return lines.join('\n');
    },
    json,
  );
  if (failed.length > 0) process.exitCode = 1;
}

export const register: RegisterCommand = (program, ctx) => {
  addTransferOptions(
    program
      .command('upload')
      .description('upload files and directories straight to S3 through presigned URLs')
      .argument('<local...>', 'files or directories (directories upload as <to>/<dir name>/…)')
      .option('--to <remote>', 'remote directory', '/'),
  )
    .addHelpText(
      'after',
      '\nExamples:\n  strata upload report.csv --to /reports/2024\n  strata upload ./images ./labels --to /datasets/cats --concurrency 32\n\nUnchanged files (same size and SHA-256 as the index) are skipped. An interrupted large upload\nresumes with only its missing parts when the same command runs again.',
    )
    .action(async (locals: string[], flags: TransferFlags) => {
      const json = Boolean(flags.json ?? ctx.flags.json);
      const remoteDir = remoteDirOf(flags.to);
      const scan = await scanArguments(locals, remoteDir, filterOf(flags));
      const { uploader, view } = makeUploader(ctx, flags, json);
      try {
        const summary = await uploader.upload(scan.files);
        view.stop();
        reportSummary(
          ctx,
          summary,
          json,
          { ignored: scan.ignored.length, symlinksSkipped: scan.symlinks },
          scan.unreadable,
        );
      } finally {
        view.stop();
        await uploader.close();
      }
    });
};
