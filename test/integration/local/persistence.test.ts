import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { afterAll, describe, expect, it } from 'vitest';
import { type LocalStack, startStack } from '../../../local/stack.ts';

const dir = mkdtempSync(join(tmpdir(), 'strata-persist-'));
let stack: LocalStack | undefined;

afterAll(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('a persisted stack', () => {
  it('keeps S3 objects, the index database and the dev token across a restart; drain() waits for the consumers', async () => {
    const opts = { stateDir: dir, persist: true, apiPort: 0, scheduleIntervalMs: 0, log: () => {} };
    stack = await startStack(opts);
    await stack.s3.send(new PutObjectCommand({ Bucket: 'strata-local', Key: 'data/kept.txt', Body: 'kept' }));
    await stack.pool.query('CREATE TABLE persist_probe (v text)');
    await stack.pool.query("INSERT INTO persist_probe VALUES ('row')");
    // The ingest event is consumed by whatever indexer exists; drain returns once it is handled.
    await stack.drain(60_000);
    const dlq = await stack.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: stack.queues.ingestDlq,
        AttributeNames: ['ApproximateNumberOfMessages'],
      }),
    );
    expect(dlq.Attributes?.ApproximateNumberOfMessages).toBe('0');
    const token = stack.adminToken;
    await stack.stop();

    stack = await startStack(opts);
    const obj = await stack.s3.send(new GetObjectCommand({ Bucket: 'strata-local', Key: 'data/kept.txt' }));
    expect(await obj.Body?.transformToString()).toBe('kept');
    const { rows } = await stack.pool.query<{ v: string }>('SELECT v FROM persist_probe');
    expect(rows).toEqual([{ v: 'row' }]);
    expect(stack.adminToken).toBe(token);
    // Queue URLs carry the new emulator port, not the one stored by the previous run.
    expect(stack.queues.ingest.startsWith(stack.dev.s3Endpoint!)).toBe(true);
    const health = await fetch(`${stack.dev.apiUrl}/health`);
    expect(health.status).toBe(200);
  });
});
