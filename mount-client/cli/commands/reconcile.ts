/**
 * `strata reconcile` — start a reconcile run (POST /v1/reconcile, admin token) and optionally wait
 * for it, showing progress. `strata import` (import.ts) is the same run with a friendlier name.
 */
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { NotFoundError } from '../../../functions/core/errors.ts';
import type { ReconcileRun } from '../../../functions/core/reconcile/types.ts';
import type { CliContext, RegisterCommand } from '../context.ts';

/** Status polls while waiting: twice a second feels live and costs the API nothing noticeable. */
export const POLL_INTERVAL_MS = 500;
/**
 * Give up waiting after this long without progress. Counts move when a segment finishes, and a
 * worker ends its segment within its 300 s Lambda budget, so two budgets with nothing finished
 * means a segment is failing or stuck (a failing message is retried only after the queue's
 * visibility timeout). The run itself carries on server-side; the message says how to follow it.
 */
export const DEFAULT_STALL_TIMEOUT_S = 600;

/** `--wait` gave up: the run made no progress for the stall timeout. */
export class ReconcileStalledError extends Error {
  constructor(
    readonly runId: string,
    readonly stalledSeconds: number,
    readonly verb: string,
  ) {
    super(
      `${verb} run ${runId} made no progress for ${stalledSeconds} s (a shard may be failing and waiting for a retry); ` +
        `it keeps running on the server — inspect it with: strata reconcile-status ${runId} ` +
        `(failed shards, counts), and the worker logs / reconcile DLQ for its errors; wait longer with --stall-timeout <seconds>`,
    );
    this.name = 'ReconcileStalledError';
  }
}

export interface RunOptions {
  prefix?: string;
  dryRun?: boolean;
  graceSeconds?: number;
  wait?: boolean;
  json?: boolean;
  /** Seconds without progress before `--wait` gives up; 0 waits for ever. */
  stallTimeout?: number;
  /** Label for messages: "reconcile" or "import". */
  verb: string;
}

export interface WaitOptions {
  pollIntervalMs: number;
  /** 0 = no stall timeout. */
  stallTimeoutMs: number;
  verb: string;
  /** Injectable for tests: the clock and the pause between polls. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  onUpdate?: (run: ReconcileRun) => void;
}

/** What counts as progress: anything the run reports changing (shards, counts, status). */
function progressOf(run: ReconcileRun): string {
  return JSON.stringify([run.status, run.shards, run.counts, run.failedShards?.length ?? 0]);
}

/**
 * Polls `fetch` until the run leaves `running`; throws ReconcileStalledError when nothing changed
 * for `stallTimeoutMs`.
 */
export async function waitForRun(
  initial: ReconcileRun,
  fetch: (id: string) => Promise<ReconcileRun>,
  options: WaitOptions,
): Promise<ReconcileRun> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let run = initial;
  let last = progressOf(run);
  let lastChange = now();
  while (run.status === 'running') {
    await sleep(options.pollIntervalMs);
    run = await fetch(run.id);
    options.onUpdate?.(run);
    const p = progressOf(run);
    if (p !== last) {
      last = p;
      lastChange = now();
    } else if (options.stallTimeoutMs > 0 && now() - lastChange >= options.stallTimeoutMs) {
      throw new ReconcileStalledError(run.id, Math.round((now() - lastChange) / 1000), options.verb);
    }
  }
  return run;
}

export function parseStallTimeout(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(
      `--stall-timeout must be a whole number of seconds (0 waits for ever), got ${JSON.stringify(value)}`,
    );
  }
  return n;
}

export function parseGrace(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(
      `--grace-seconds must be a whole number of seconds (0 or more), got ${JSON.stringify(value)}`,
    );
  }
  return n;
}

export function summarize(run: ReconcileRun): string {
  const c = run.counts;
  const head = `${run.dryRun ? 'dry run ' : ''}${run.id} ${run.status} (scope ${run.scope}, ${run.shards.done}/${run.shards.total} shards)`;
  const lines = [
    head,
    `  scanned ${c.scanned}  added ${c.added}  missing ${c.missing}  deleted ${c.deleted}  refreshed ${c.refreshed}  unchanged ${c.unchanged}`,
  ];
  if (c.skippedRecent > 0) lines.push(`  left alone (changed within the grace period): ${c.skippedRecent}`);
  if (c.ignored > 0) lines.push(`  ignored (keys no Strata path maps to): ${c.ignored}`);
  for (const f of run.failedShards ?? []) {
    lines.push(
      `  shard ${f.shardId} failed at segment ${f.segment} after ${f.attempts} attempts: ${f.error}`,
    );
  }
  if (run.dryRun) {
    const samples = run.samples ?? [];
    if (samples.length > 0) {
      lines.push('  dry run: nothing was written; these would change:');
      for (const s of samples) lines.push(`    ${s.kind.padEnd(10)} ${s.path}`);
    } else if (run.status === 'running') {
      lines.push(
        `  dry run: nothing is written; \`strata reconcile-status ${run.id}\` shows what would change`,
      );
    } else {
      const changes = c.added + c.missing + c.deleted + c.refreshed;
      lines.push(
        `  dry run: nothing was written; ${changes === 0 ? 'nothing would change' : `${changes} change(s) found`}`,
      );
    }
  }
  if (run.error) lines.push(`  error: ${run.error}`);
  return lines.join('\n');
}

export async function startAndMaybeWait(ctx: CliContext, options: RunOptions): Promise<void> {
  const api = ctx.api();
  const body: Record<string, unknown> = {};
  if (options.prefix !== undefined) body.prefix = options.prefix;
  if (options.dryRun) body.dryRun = true;
  if (options.graceSeconds !== undefined) body.graceSeconds = options.graceSeconds;
  let run = await api.request<ReconcileRun>('POST', '/v1/reconcile', { body });
  const json = options.json ?? ctx.flags.json;
  if (!options.wait) {
    ctx.print(
      run,
      () => `started ${options.verb} run ${run.id}; follow it with: strata reconcile-status ${run.id}`,
      json,
    );
    return;
  }
  const showBar = !json && process.stderr.isTTY;
  const bar = showBar
    ? new cliProgress.SingleBar(
        {
          format: `${options.verb} [{bar}] {value}/{total} shards | scanned {scanned} | added {added} | missing {missing} | refreshed {refreshed}`,
          stream: process.stderr,
          hideCursor: true,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  bar?.start(Math.max(1, run.shards.total), 0, run.counts);
  try {
    run = await waitForRun(
      run,
      (id) => api.request<ReconcileRun>('GET', `/v1/reconcile/${encodeURIComponent(id)}`),
      {
        pollIntervalMs: POLL_INTERVAL_MS,
        stallTimeoutMs: (options.stallTimeout ?? DEFAULT_STALL_TIMEOUT_S) * 1000,
        verb: options.verb,
        onUpdate: (r) => {
          bar?.setTotal(Math.max(1, r.shards.total));
          bar?.update(r.shards.done, r.counts);
        },
      },
    );
  } finally {
    bar?.stop();
  }
  ctx.print(run, () => summarize(run), json);
  if (run.status === 'failed') {
    process.stderr.write(
      `strata: ${options.verb} run ${run.id} failed; see the error above, or run: strata reconcile-status ${run.id}\n`,
    );
    process.exitCode = 1;
  }
}

export const register: RegisterCommand = (program: Command, ctx) => {
  program
    .command('reconcile')
    .description(
      'compare the bucket with the index and heal drift (objects written or deleted behind the API, lost events); needs an admin token',
    )
    .option('--prefix <path>', 'only reconcile beneath this Strata directory (default: everything)')
    .option('--dry-run', 'report what would change; write nothing to the index')
    .option('--wait', 'wait for the run to finish, with a progress bar')
    .option(
      '--grace-seconds <n>',
      'leave alone index rows changed this recently (in-flight events); default: server setting (900)',
      parseGrace,
    )
    .option(
      '--stall-timeout <seconds>',
      `with --wait: give up (exit 1) after this long without progress; 0 waits for ever (default ${DEFAULT_STALL_TIMEOUT_S})`,
      parseStallTimeout,
    )
    .option('--json', 'print the run record as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  strata reconcile --dry-run --wait\n  strata reconcile --prefix /datasets --wait --json\n',
    )
    .action(
      async (opts: {
        prefix?: string;
        dryRun?: boolean;
        wait?: boolean;
        graceSeconds?: number;
        stallTimeout?: number;
        json?: boolean;
      }) => {
        await startAndMaybeWait(ctx, { ...opts, verb: 'reconcile' });
      },
    );

  program
    .command('reconcile-status <runId>')
    .description('show a reconcile run: status, shard progress and counts')
    .option('--json', 'print the run record as JSON')
    .action(async (runId: string, opts: { json?: boolean }) => {
      const run = await ctx
        .api()
        .request<ReconcileRun>('GET', `/v1/reconcile/${encodeURIComponent(runId)}`)
        .catch((err: unknown) => {
          // The API's message points at POST /v1/reconcile; on the command line that is this tool.
          if (err instanceof NotFoundError)
            throw new NotFoundError(
              `no reconcile run ${JSON.stringify(runId)}: use the id \`strata reconcile\` or \`strata import\` printed, or start a run with \`strata reconcile\``,
              { cause: err },
            );
          throw err;
        });
      ctx.print(run, () => summarize(run), opts.json ?? ctx.flags.json);
    });
};
