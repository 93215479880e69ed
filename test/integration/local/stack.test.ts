import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { DeleteMessageCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isListening } from '../../../local/ports.ts';
import { decodeEventKey, type S3EventRecord } from '../../../local/s3-events.ts';
import { type LocalStack, startStack } from '../../../local/stack.ts';

let stack: LocalStack;
let dir: string;
const lines: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'strata-stack-'));
  // Pollers off: this file reads the ingest queue itself to inspect the synthesized events.
  stack = await startStack({
    stateDir: dir,
    apiPort: 0,
    scheduleIntervalMs: 0,
    consumers: false,
    log: (l) => lines.push(l),
  });
});

afterAll(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Receives and deletes ingest messages until `n` records have arrived. */
async function takeRecords(n: number): Promise<S3EventRecord[]> {
  const out: S3EventRecord[] = [];
  for (let i = 0; i < 50 && out.length < n; i++) {
    const r = await stack.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: stack.queues.ingest,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 1,
      }),
    );
    for (const m of r.Messages ?? []) {
      out.push(...(JSON.parse(m.Body ?? '{}') as { Records: S3EventRecord[] }).Records);
      await stack.sqs.send(
        new DeleteMessageCommand({ QueueUrl: stack.queues.ingest, ReceiptHandle: m.ReceiptHandle }),
      );
    }
  }
  return out;
}

describe('local stack', () => {
  it('serves /health and describes itself in dev', async () => {
    const res = await fetch(`${stack.dev.apiUrl}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
    expect(stack.dev).toMatchObject({ bucket: 'strata-local', dataPrefix: 'data/', region: 'us-east-1' });
    expect(stack.dev.token).toMatch(/^stk_/);
    const { rows } = await stack.pool.query<{ scopes: string[] }>('SELECT scopes FROM tokens');
    expect(rows.map((r) => [...r.scopes].sort())).toEqual([['admin', 'read', 'write']]);
  });

  it('answers unknown routes with a JSON 404', async () => {
    const res = await fetch(`${stack.dev.apiUrl}/v1/nope`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('not_found');
  });

  it('synthesizes S3 events with form-URL-encoded keys for awkward names', async () => {
    const names = ['a b.txt', 'a+b.txt', '100%.txt', '#hash?.txt', 'café/ünï.txt', '🎉 party.txt'];
    for (const name of names)
      await stack.s3.send(new PutObjectCommand({ Bucket: 'strata-local', Key: `data/${name}`, Body: name }));
    const records = await takeRecords(names.length);
    expect(records.map((r) => decodeEventKey(r.s3.object.key)).sort()).toEqual(
      names.map((n) => `data/${n}`).sort(),
    );
    const spaced = records.find((r) => decodeEventKey(r.s3.object.key) === 'data/a b.txt')!;
    expect(spaced.s3.object.key).toBe('data/a+b.txt');
    expect(records.find((r) => decodeEventKey(r.s3.object.key) === 'data/a+b.txt')!.s3.object.key).toBe(
      'data/a%2Bb.txt',
    );
    for (const r of records) {
      expect(r).toMatchObject({ eventVersion: '2.1', eventSource: 'aws:s3', eventName: 'ObjectCreated:Put' });
      expect(r.s3.bucket).toMatchObject({ name: 'strata-local', arn: 'arn:aws:s3:::strata-local' });
      expect(r.s3.object.size).toBe(Buffer.byteLength(decodeEventKey(r.s3.object.key).slice(5)));
      expect(r.s3.object.eTag).toMatch(/^[0-9a-f]{32}$/);
      expect(r.s3.object.sequencer).toMatch(/^[0-9A-F]+$/);
    }
  });

  it('orders events per key with increasing sequencers; copy, delete and DeleteObjects are named as S3 names them', async () => {
    const key = 'data/seq/k.txt';
    await stack.s3.send(new PutObjectCommand({ Bucket: 'strata-local', Key: key, Body: 'one' }));
    await stack.s3.send(new PutObjectCommand({ Bucket: 'strata-local', Key: key, Body: 'two!' }));
    await stack.s3.send(
      new CopyObjectCommand({
        Bucket: 'strata-local',
        Key: 'data/seq/copy.txt',
        CopySource: `strata-local/${key}`,
      }),
    );
    await stack.s3.send(new DeleteObjectCommand({ Bucket: 'strata-local', Key: key }));
    await stack.s3.send(
      new DeleteObjectsCommand({
        Bucket: 'strata-local',
        Delete: { Objects: [{ Key: 'data/seq/copy.txt' }] },
      }),
    );
    // Ordered by sequencer, not by arrival: each notification is sent as its own SendMessage,
    // not awaited by the S3 request, so two of them can reach the queue in either order (as S3's
    // do); the sequencer is what orders the events of a key, and it must follow the mutations.
    const records = (await takeRecords(5)).sort((a, b) =>
      a.s3.object.sequencer < b.s3.object.sequencer ? -1 : 1,
    );
    const forKey = records.filter((r) => r.s3.object.key === key);
    expect(forKey.map((r) => r.eventName)).toEqual([
      'ObjectCreated:Put',
      'ObjectCreated:Put',
      'ObjectRemoved:Delete',
    ]);
    expect(forKey.map((r) => r.s3.object.size)).toEqual([3, 4, undefined]); // 'one', then 'two!'
    const seqs = forKey.map((r) => r.s3.object.sequencer);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(forKey[2]!.s3.object).not.toHaveProperty('size');
    const copy = records.filter((r) => r.s3.object.key === 'data/seq/copy.txt').map((r) => r.eventName);
    expect(copy).toEqual(['ObjectCreated:Copy', 'ObjectRemoved:Delete']);
  });

  it('names a completed multipart upload CompleteMultipartUpload with the AWS-style ETag', async () => {
    const Key = 'data/multi part.bin';
    const { UploadId } = await stack.s3.send(
      new CreateMultipartUploadCommand({ Bucket: 'strata-local', Key }),
    );
    const part1 = Buffer.alloc(5 * 1024 * 1024, 1);
    const p1 = await stack.s3.send(
      new UploadPartCommand({ Bucket: 'strata-local', Key, UploadId, PartNumber: 1, Body: part1 }),
    );
    const p2 = await stack.s3.send(
      new UploadPartCommand({
        Bucket: 'strata-local',
        Key,
        UploadId,
        PartNumber: 2,
        Body: Buffer.from('tail'),
      }),
    );
    await stack.s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: 'strata-local',
        Key,
        UploadId,
        MultipartUpload: {
          Parts: [
            { PartNumber: 1, ETag: p1.ETag },
            { PartNumber: 2, ETag: p2.ETag },
          ],
        },
      }),
    );
    const [r] = await takeRecords(1);
    expect(r).toMatchObject({
      eventName: 'ObjectCreated:CompleteMultipartUpload',
      s3: { object: { key: 'data/multi+part.bin', size: part1.length + 4 } },
    });
    expect(r!.s3.object.eTag).toMatch(/^[0-9a-f]{32}-2$/);
  });
});

describe('stop', () => {
  it('frees every port and leaves no child process', async () => {
    const { dev, processes } = stack;
    const ports = [dev.apiUrl, dev.s3Endpoint!, dev.databaseUrl!, ...(dev.redis ? [dev.redis.url] : [])].map(
      (u) => Number(new URL(u).port),
    );
    for (const p of ports) expect(await isListening(p)).toBe(true);
    expect(processes.postgres).toBeGreaterThan(0);
    await stack.stop();
    for (const p of ports) expect(await isListening(p)).toBe(false);
    for (const pid of [processes.postgres, processes.redis].filter((p): p is number => p !== undefined))
      expect(() => process.kill(pid, 0)).toThrow();
  });
});
