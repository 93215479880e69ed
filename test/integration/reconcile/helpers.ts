/**
 * Shared set-up of the reconcile integration tests: a local stack WITHOUT S3 event notifications
 * (every index change comes from reconcile, or from a test simulating the indexer), bulk object
 * writes straight to the emulator, and a "run and wait" that goes through the HTTP API and the
 * reconcile queue exactly as `strata reconcile --wait` does.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { applyObjectChanges, getObject } from '../../../functions/adapters/pg/index-store.ts';
import { withTransaction } from '../../../functions/adapters/pg/pool.ts';
import type { ObjectChange } from '../../../functions/core/index-apply.ts';
import { keyForPath } from '../../../functions/core/paths.ts';
import type { ReconcileRun } from '../../../functions/core/reconcile/types.ts';
import { type LocalStack, type StackOptions, startStack } from '../../../local/stack.ts';
import { ApiClient } from '../../../mount-client/api/client.ts';

export interface Harness {
  stack: LocalStack;
  api: ApiClient;
  stop(): Promise<void>;
}

export async function startHarness(
  name: string,
  env: Record<string, string> = {},
  stackOptions: Pick<StackOptions, 'visibilityTimeoutSeconds'> = {},
): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), `strata-reconcile-${name}-`));
  const stack = await startStack({
    stateDir: dir,
    apiPort: 0,
    scheduleIntervalMs: 0,
    events: false,
    log: () => {},
    ...stackOptions,
    // Worker runs are quick in tests; the default reserve (30 s) would re-enqueue after every page
    // under the local Lambda budget only when asked to by a test.
    env: { POWERTOOLS_METRICS_DISABLED: 'true', ...env },
  });
  const api = new ApiClient({ apiUrl: stack.dev.apiUrl, token: stack.adminToken });
  return {
    stack,
    api,
    async stop() {
      await api.close();
      await stack.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export const keyOf = (h: Harness, path: string) => keyForPath(h.stack.dev.dataPrefix, path);

/** Writes objects straight to S3 (no event: the stack runs with notifications off). */
export async function putObjects(
  h: Harness,
  paths: string[],
  body: (p: string) => string = (p) => `body of ${p}`,
) {
  // 16 concurrent PUTs: the emulator runs in this process, more only contends for the same cores.
  const limit = pLimit(16);
  await Promise.all(
    paths.map((p) =>
      limit(() =>
        h.stack.s3.send(
          new PutObjectCommand({ Bucket: h.stack.dev.bucket, Key: keyOf(h, p), Body: body(p) }),
        ),
      ),
    ),
  );
}

export async function deleteObjects(h: Harness, paths: string[]) {
  for (const p of paths)
    await h.stack.s3.send(new DeleteObjectCommand({ Bucket: h.stack.dev.bucket, Key: keyOf(h, p) }));
}

let sequencer = 0;
/** What the indexer does for an ObjectCreated event: the same write path, with a sequencer. */
export async function indexAsEvent(h: Harness, path: string, etag: string, size: number) {
  const change: ObjectChange = {
    kind: 'put',
    key: keyOf(h, path),
    path,
    size,
    etag,
    sequencer: String(++sequencer).padStart(20, '0'),
    lastModified: new Date(),
  };
  await withTransaction(h.stack.pool, (c) => applyObjectChanges(c, [change], { source: 'event' }));
}

export async function runAndWait(
  h: Harness,
  body: { prefix?: string; dryRun?: boolean; graceSeconds?: number } = {},
): Promise<ReconcileRun> {
  const started = await h.api.request<ReconcileRun>('POST', '/v1/reconcile', {
    body: { graceSeconds: 0, ...body },
  });
  await h.stack.drain(120_000);
  const run = await h.api.request<ReconcileRun>('GET', `/v1/reconcile/${started.id}`);
  if (run.status !== 'succeeded') throw new Error(`run ${run.id} did not succeed: ${JSON.stringify(run)}`);
  return run;
}

export async function stateOf(h: Harness, path: string) {
  return (await getObject(h.stack.pool, path))?.state;
}

export async function activeCount(h: Harness): Promise<number> {
  const { rows } = await h.stack.pool.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM objects WHERE state = 'active'",
  );
  return rows[0]?.n ?? 0;
}

export async function journalCount(h: Harness, runId?: string): Promise<number> {
  const { rows } = await h.stack.pool.query<{ n: number }>(
    runId
      ? 'SELECT count(*)::int AS n FROM changes WHERE run_id = $1'
      : 'SELECT count(*)::int AS n FROM changes',
    runId ? [runId] : [],
  );
  return rows[0]?.n ?? 0;
}
