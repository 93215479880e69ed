import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Emulator, startEmulator } from '../../../local/emulator.ts';
import { type Poller, startPoller } from '../../../local/poller.ts';

const REGION = 'us-east-1';
let emulator: Emulator;
let sqs: SQSClient;
const pollers: Poller[] = [];

beforeAll(async () => {
  emulator = await startEmulator({ region: REGION });
  sqs = new SQSClient({
    region: REGION,
    endpoint: emulator.endpoint,
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
  });
});

afterAll(async () => {
  await Promise.all(pollers.map((p) => p.stop()));
  sqs?.destroy();
  await emulator?.stop();
});

let n = 0;
async function queuePair(maxReceiveCount: number): Promise<{ url: string; arn: string; dlqUrl: string }> {
  const name = `q${++n}`;
  const dlq = await sqs.send(new CreateQueueCommand({ QueueName: `${name}-dlq` }));
  const arnOf = (q: string) => `arn:aws:sqs:${REGION}:000000000000:${q}`;
  const main = await sqs.send(
    new CreateQueueCommand({
      QueueName: name,
      Attributes: {
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: arnOf(`${name}-dlq`), maxReceiveCount }),
      },
    }),
  );
  return { url: main.QueueUrl!, arn: arnOf(name), dlqUrl: dlq.QueueUrl! };
}

async function send(url: string, bodies: string[]): Promise<void> {
  await sqs.send(
    new SendMessageBatchCommand({
      QueueUrl: url,
      Entries: bodies.map((b, i) => ({ Id: String(i), MessageBody: b })),
    }),
  );
}

function run(
  q: { url: string; arn: string },
  handler: (e: SQSEvent) => Promise<unknown>,
  extra: { batchSize?: number; maxReceiveCount?: number; window?: number; visibility?: number } = {},
): Poller {
  const p = startPoller({
    sqs,
    queueUrl: q.url,
    queueArn: q.arn,
    region: REGION,
    batchSize: extra.batchSize ?? 10,
    maxBatchingWindowSeconds: extra.window ?? 1,
    maxReceiveCount: extra.maxReceiveCount ?? 5,
    visibilityTimeoutSeconds: extra.visibility ?? 1,
    waitTimeSeconds: 1,
    handler,
    log: () => {},
    name: 'test',
  });
  pollers.push(p);
  return p;
}

async function until(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function depth(url: string): Promise<number> {
  const a = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: url,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return (
    Number(a.Attributes?.ApproximateNumberOfMessages) +
    Number(a.Attributes?.ApproximateNumberOfMessagesNotVisible)
  );
}

describe('SQS poller with Lambda semantics', () => {
  it('delivers Lambda-shaped records in batches', async () => {
    const q = await queuePair(5);
    await send(q.url, ['a', 'b', 'c']);
    const events: SQSEvent[] = [];
    const p = run(q, async (e) => {
      events.push(e);
    });
    await until(() => events.flatMap((e) => e.Records).length === 3, 'three records');
    const r = events[0]!.Records[0]!;
    expect(r).toMatchObject({ eventSource: 'aws:sqs', eventSourceARN: q.arn, awsRegion: REGION });
    expect(r.attributes.ApproximateReceiveCount).toBe('1');
    expect(r.md5OfBody).toMatch(/^[0-9a-f]{32}$/);
    await until(async () => (await depth(q.url)) === 0, 'deletes');
    await p.stop();
  });

  it('keeps a batch hidden while a slow handler outlives the visibility timeout', async () => {
    const q = await queuePair(5);
    await send(q.url, ['slow']);
    const seen: string[] = [];
    let stolen = -1;
    // A 3 s visibility timeout, extended every 1.5 s: the heartbeat keeps the message hidden as long
    // as no two extensions land more than 3 s apart. With 1 s (every 0.5 s) a process stalled for
    // ~1 s on a loaded machine — this process hosts the emulator too — let the other consumer's
    // long poll take the message (a 1.2 s busy-wait reproduces it).
    const p = run(
      q,
      async (e) => {
        seen.push(...e.Records.map((r) => r.body));
        // Another consumer polls after two visibility timeouts: without the heartbeat SQS would
        // hand the in-flight message to it.
        await new Promise((r) => setTimeout(r, 6000));
        const other = await sqs.send(new ReceiveMessageCommand({ QueueUrl: q.url, WaitTimeSeconds: 1 }));
        stolen = other.Messages?.length ?? 0;
      },
      { visibility: 3 },
    );
    await until(
      async () => seen.length === 1 && stolen >= 0 && (await depth(q.url)) === 0,
      'slow batch done',
    );
    await p.stop();
    expect(stolen).toBe(0);
    expect(seen).toEqual(['slow']);
  });

  it('redelivers only the item reported in batchItemFailures', async () => {
    const q = await queuePair(5);
    await send(q.url, ['1', '2', '3', '4', '5']);
    const seen: string[] = [];
    const p = run(q, async (e) => {
      seen.push(...e.Records.map((r) => r.body));
      const failed = e.Records.filter((r) => r.body === '2' && r.attributes.ApproximateReceiveCount === '1');
      return { batchItemFailures: failed.map((r) => ({ itemIdentifier: r.messageId })) };
    });
    await until(() => seen.filter((b) => b === '2').length === 2, 'item 2 redelivered');
    await until(async () => (await depth(q.url)) === 0, 'queue empty');
    await p.stop();
    expect(seen.sort()).toEqual(['1', '2', '2', '3', '4', '5']);
  });

  it('moves a message that always fails to the DLQ after maxReceiveCount receives', async () => {
    const q = await queuePair(3);
    await send(q.url, ['poison', 'fine']);
    let poisonAttempts = 0;
    const p = run(
      q,
      async (e) => {
        const bad = e.Records.filter((r) => r.body === 'poison');
        poisonAttempts += bad.length;
        return { batchItemFailures: bad.map((r) => ({ itemIdentifier: r.messageId })) };
      },
      { maxReceiveCount: 3 },
    );
    await until(async () => (await depth(q.dlqUrl)) === 1, 'poison in DLQ');
    await p.stop();
    expect(poisonAttempts).toBe(3);
    expect(await depth(q.url)).toBe(0);
    const dlq = await sqs.send(new ReceiveMessageCommand({ QueueUrl: q.dlqUrl, MaxNumberOfMessages: 10 }));
    expect(dlq.Messages?.map((m) => m.Body)).toEqual(['poison']);
  });

  it('redelivers the whole batch when the handler throws', async () => {
    const q = await queuePair(5);
    await send(q.url, ['x', 'y', 'z']);
    const deliveries: string[][] = [];
    const p = run(q, async (e) => {
      deliveries.push(e.Records.map((r) => r.body).sort());
      if (deliveries.length === 1) throw new Error('boom');
    });
    await until(
      async () => deliveries.flat().length >= 6 && (await depth(q.url)) === 0,
      'retry of the batch',
    );
    await p.stop();
    expect(deliveries.flat().sort()).toEqual(['x', 'x', 'y', 'y', 'z', 'z']);
  });

  it('treats an unknown itemIdentifier as a failure of the whole batch', async () => {
    const q = await queuePair(5);
    await send(q.url, ['m1', 'm2']);
    let calls = 0;
    const bodies: string[] = [];
    const p = run(q, async (e) => {
      calls++;
      bodies.push(...e.Records.map((r) => r.body));
      return calls === 1 ? { batchItemFailures: [{ itemIdentifier: 'not-in-batch' }] } : undefined;
    });
    await until(async () => bodies.length >= 4 && (await depth(q.url)) === 0, 'redelivery');
    await p.stop();
    expect(bodies.sort()).toEqual(['m1', 'm1', 'm2', 'm2']);
  });

  it('fills a batch up to batchSize across several receives', async () => {
    const q = await queuePair(5);
    await send(
      q.url,
      Array.from({ length: 10 }, (_, i) => `a${i}`),
    );
    await send(
      q.url,
      Array.from({ length: 10 }, (_, i) => `b${i}`),
    );
    const sizes: number[] = [];
    const p = run(
      q,
      async (e) => {
        sizes.push(e.Records.length);
      },
      { batchSize: 20, window: 2 },
    );
    await until(() => sizes.reduce((a, b) => a + b, 0) === 20, 'all 20');
    await p.stop();
    expect(Math.max(...sizes)).toBeGreaterThan(10);
  });
});
