/**
 * `strata sync <dir> --to <remote> [--watch] [--delete] [--dry-run] [--yes]`: makes a remote
 * directory mirror a local one — uploads new and changed files (unchanged ones are skipped by size
 * and SHA-256), optionally deletes remote files that no longer exist locally, and with --watch keeps
 * doing so as files change.
 */
import { stat } from 'node:fs/promises';
import { createInterface } from 'node:readline/promises';
import { applyDeletes, planSync, type SyncPlan, watchAndSync } from '../../upload/sync.ts';
import type { RegisterCommand } from '../context.ts';
import { displayName } from './format.ts';
import {
  addTransferOptions,
  filterOf,
  makeUploader,
  remoteDirOf,
  reportSummary,
  type TransferFlags,
} from './upload.ts';

interface SyncFlags extends TransferFlags {
  watch?: boolean;
  delete?: boolean;
  dryRun?: boolean;
  yes?: boolean;
}

async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) {
    throw new Error(
      'refusing to delete remote files without confirmation: pass --yes (stdin is not a terminal)',
    );
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

/** The local side must be a directory; say so up front instead of a bare ENOENT from opendir. */
export async function checkLocalDir(dir: string): Promise<void> {
  const st = await stat(dir).catch(() => undefined);
  if (!st) throw new Error(`cannot sync ${dir}: no such directory (check the path)`);
  if (!st.isDirectory())
    throw new Error(
      `cannot sync ${dir}: not a directory; use \`strata upload ${dir} --to <remote>\` for a file`,
    );
}

/**
 * What `--dry-run` prints. Names are escaped as `strata ls` prints them (displayName): local file
 * names and remote paths written straight to S3 can hold characters that reorder or hide text
 * (U+202E…), and a dry run is read to decide what to upload and delete.
 */
export function dryRunText(plan: Pick<SyncPlan, 'upload' | 'remoteOnly'>): string {
  return [
    `would upload ${plan.upload.length} file(s) (unchanged ones are skipped at upload time)`,
    ...plan.upload.map((f) => `  upload ${displayName(f.remote)}`),
    `would delete ${plan.remoteOnly.length} remote file(s)`,
    ...plan.remoteOnly.map((p) => `  delete ${displayName(p)}`),
  ].join('\n');
}

export const register: RegisterCommand = (program, ctx) => {
  addTransferOptions(
    program
      .command('sync')
      .description('mirror a local directory into a remote directory')
      .argument('<dir>', 'local directory')
      .requiredOption('--to <remote>', 'remote directory')
      .option('--watch', 'keep running and upload changes as they happen')
      .option('--delete', 'delete remote files that no longer exist locally (asks first unless --yes)')
      .option('--dry-run', 'print what would be uploaded and deleted; change nothing')
      .option('--yes', 'do not ask before deleting'),
  )
    .addHelpText(
      'after',
      '\nExamples:\n  strata sync ./workspace --to /workspaces/www\n  strata sync ./workspace --to /workspaces/www --delete --dry-run\n  strata sync ./workspace --to /workspaces/www --watch\n\nFiltering: node_modules/, .git/, *.log, .env*, dist/, build/, __pycache__/, vendor/, *.pyc,\n.DS_Store and Thumbs.db are skipped by default, plus whatever .gitignore, .dockerignore and\n.strataignore files at any level say.',
    )
    .action(async (dir: string, flags: SyncFlags) => {
      await checkLocalDir(dir);
      const json = Boolean(flags.json ?? ctx.flags.json);
      const remoteDir = remoteDirOf(flags.to);
      const api = ctx.api();
      const plan = await planSync(api, dir, remoteDir, filterOf(flags), Boolean(flags.delete));
      if (flags.dryRun) {
        ctx.print(
          {
            dryRun: true,
            upload: plan.upload.map((f) => ({ local: f.abs, remote: f.remote, size: f.size })),
            delete: plan.remoteOnly,
            ignored: plan.ignored,
          },
          () => dryRunText(plan),
          json,
        );
        return;
      }
      const { uploader, view } = makeUploader(ctx, flags, json);
      try {
        const summary = await uploader.upload(plan.upload);
        view.stop();
        let deletes = { deleted: [] as string[], failed: [] as Array<{ path: string; reason: string }> };
        if (plan.remoteOnly.length > 0) {
          const ok =
            flags.yes ||
            (await confirm(
              `delete ${plan.remoteOnly.length} remote file(s) under ${remoteDir} that are not in ${dir}?`,
            ));
          if (ok) deletes = await applyDeletes(api, plan.remoteOnly);
        }
        reportSummary(
          ctx,
          summary,
          json,
          { deleted: deletes.deleted, deleteFailures: deletes.failed },
          plan.unreadable,
        );
        if (deletes.failed.length > 0) process.exitCode = 1;
        if (!flags.watch) return;
        if (flags.delete && !flags.yes) {
          throw new Error('--watch --delete deletes without asking each time: add --yes to confirm');
        }
        process.stderr.write(`watching ${dir} → ${remoteDir} (Ctrl-C to stop)\n`);
        const stop = await watchAndSync({
          api,
          uploader,
          localDir: dir,
          remoteDir,
          filter: filterOf(flags),
          delete: Boolean(flags.delete),
          onPass: (s, d) => reportSummary(ctx, s, json, { deleted: d.deleted, deleteFailures: d.failed }),
          onError: (err) => process.stderr.write(`strata sync: ${(err as Error).message}\n`),
        });
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        await stop();
      } finally {
        view.stop();
        await uploader.close();
      }
    });
};
