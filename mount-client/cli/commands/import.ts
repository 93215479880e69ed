/**
 * `strata import` — index a bucket (or a prefix of it) that holds objects written before Strata
 * existed. It is a reconcile run that waits with a progress bar: every listed object the index
 * does not know is added, through the same write path as the indexer.
 */
import type { RegisterCommand } from '../context.ts';
import { DEFAULT_STALL_TIMEOUT_S, parseStallTimeout, startAndMaybeWait } from './reconcile.ts';

export const register: RegisterCommand = (program, ctx) => {
  program
    .command('import')
    .description(
      'index objects already in the bucket (written before Strata, or behind its back); needs an admin token',
    )
    .option('--prefix <path>', 'only import beneath this Strata directory (default: the whole data prefix)')
    .option('--dry-run', 'count what would be imported; write nothing')
    .option(
      '--stall-timeout <seconds>',
      `give up (exit 1) after this long without progress; 0 waits for ever (default ${DEFAULT_STALL_TIMEOUT_S})`,
      parseStallTimeout,
    )
    .option('--json', 'print the final run record as JSON')
    .addHelpText('after', '\nExamples:\n  strata import --dry-run\n  strata import --prefix /archive/2023\n')
    .action(async (opts: { prefix?: string; dryRun?: boolean; stallTimeout?: number; json?: boolean }) => {
      await startAndMaybeWait(ctx, { ...opts, wait: true, verb: 'import' });
    });
};
