/**
 * Runs Strata's Lambda handlers in this process, the way the Lambda runtime would: the module named
 * by routes.ts `lambdas[name].entry` is imported once (cold start), its `handler` export is called
 * with the event and a Lambda `Context`.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Context } from 'aws-lambda';
import { type LambdaName, lambdas } from '../functions/handlers/routes.ts';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

export type Handler = (event: unknown, context: Context) => Promise<unknown>;

/** The handler module named in routes.ts does not exist yet (another issue has not landed it). */
export class HandlerMissingError extends Error {
  override name = 'HandlerMissingError';
  constructor(
    readonly lambda: LambdaName,
    readonly entry: string,
  ) {
    super(`handler module ${entry} (lambda ${lambda}) does not exist yet`);
  }
}

/**
 * Loaded handlers, one per lambda name (the cold start happens once per process, like one warm
 * Lambda environment). Without this every invocation re-entered `import()` — through tsx's loader
 * hooks — which cost about a quarter of the CPU of a cached resolve request.
 */
const loaded = new Map<LambdaName, Promise<Handler>>();

export function loadHandler(name: LambdaName): Promise<Handler> {
  let p = loaded.get(name);
  if (!p) {
    p = importHandler(name);
    // A failed import (module not there yet, syntax error) is retried on the next invocation.
    p.catch(() => loaded.delete(name));
    loaded.set(name, p);
  }
  return p;
}

async function importHandler(name: LambdaName): Promise<Handler> {
  const spec = lambdas[name];
  if (!spec) throw new Error(`unknown lambda ${name}; see functions/handlers/routes.ts`);
  const file = join(REPO_ROOT, spec.entry);
  if (!existsSync(file)) throw new HandlerMissingError(name, spec.entry);
  const mod = (await import(pathToFileURL(file).href)) as { handler?: unknown };
  if (typeof mod.handler !== 'function')
    throw new Error(`${spec.entry} does not export a function named handler`);
  return mod.handler as Handler;
}

export function lambdaContext(name: LambdaName, region: string): Context {
  const spec = lambdas[name];
  const deadline = Date.now() + spec.timeoutSeconds * 1000;
  const functionName = `strata-local-${name}`;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${region}:000000000000:function:${functionName}`,
    memoryLimitInMB: String(spec.memoryMb),
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `local/${process.pid}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

/**
 * Invocations in flight with their deadlines. One shared, unref'd sweep timer enforces every
 * timeout: a timer armed and cleared per invocation cost more CPU than a cached resolve itself, and
 * Lambda timeouts are seconds to minutes, so checking every 100 ms is precise enough.
 */
const inFlight = new Set<{ deadline: number; fail: () => void }>();
let sweeper: NodeJS.Timeout | undefined;
const SWEEP_MS = 100;

function sweep(): void {
  const now = Date.now();
  for (const entry of inFlight) if (now >= entry.deadline) entry.fail();
  if (inFlight.size === 0 && sweeper) {
    clearInterval(sweeper);
    sweeper = undefined;
  }
}

/** Invokes a handler with Lambda's timeout: a handler running past it fails like a timed-out Lambda. */
export async function invokeHandler(name: LambdaName, event: unknown, region: string): Promise<unknown> {
  const handler = await loadHandler(name);
  const context = lambdaContext(name, region);
  const { timeoutSeconds } = lambdas[name];
  let entry: { deadline: number; fail: () => void } | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    entry = {
      deadline: Date.now() + timeoutSeconds * 1000,
      fail: () => {
        inFlight.delete(entry as never);
        reject(new Error(`lambda ${name} timed out after ${timeoutSeconds} s`));
      },
    };
  });
  // Unobserved once the handler wins the race; never an unhandled rejection.
  timedOut.catch(() => {});
  const e = entry as { deadline: number; fail: () => void };
  inFlight.add(e);
  if (!sweeper) {
    sweeper = setInterval(sweep, SWEEP_MS);
    sweeper.unref();
  }
  try {
    return await Promise.race([handler(event, context), timedOut]);
  } finally {
    inFlight.delete(e);
  }
}
