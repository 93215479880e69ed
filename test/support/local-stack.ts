/**
 * One local stack (PostgreSQL, fauxqs S3 + SQS, indexer, API) per test file, started in beforeAll
 * on a temporary state directory and port 0, stopped and removed in afterAll, with an admin
 * ApiClient. Call at the top level of a test file.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { type LocalStack, startStack } from '../../local/stack.ts';
import { ApiClient } from '../../mount-client/api/client.ts';

export interface StackFixture {
  readonly stack: LocalStack;
  readonly api: ApiClient;
}

export function useLocalStack(name: string): StackFixture {
  let dir: string | undefined;
  let stack: LocalStack | undefined;
  let api: ApiClient | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), `strata-${name}-`));
    stack = await startStack({ stateDir: dir, apiPort: 0, scheduleIntervalMs: 0, log: () => {} });
    api = new ApiClient({ apiUrl: stack.dev.apiUrl, token: stack.adminToken });
  });
  afterAll(async () => {
    await api?.close();
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  const started = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error('the local stack is used before beforeAll started it');
    return v;
  };
  return {
    get stack() {
      return started(stack);
    },
    get api() {
      return started(api);
    },
  };
}
