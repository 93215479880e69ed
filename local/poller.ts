/**
 * A local SQS event source mapping with Lambda's semantics (what AWS runs between an SQS queue and
 * a function), so the indexer and reconcile worker see the same events and failure handling here
 * as in AWS:
 * - long polling; a batch fills up to `batchSize` or until `maxBatchingWindowSeconds` passes;
 * - the handler gets an `SQSEvent`; with ReportBatchItemFailures only the messages it did not list
 *   in `batchItemFailures` are deleted — the listed ones become visible again after the visibility
 *   timeout and, after `maxReceiveCount` receives, fauxqs's redrive policy moves them to the DLQ;
 * - a handler that throws (or returns a malformed failure list) fails the whole batch: nothing is
 *   deleted, as Lambda does.
 */
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent, SQSMessageAttributes, SQSRecord } from 'aws-lambda';

export interface PollerOptions {
  sqs: SQSClient;
  queueUrl: string;
  queueArn: string;
  region: string;
  batchSize: number;
  maxBatchingWindowSeconds: number;
  maxReceiveCount: number;
  /** Seconds a received message stays invisible; short locally so retries show up quickly. */
  visibilityTimeoutSeconds: number;
  /** Long-poll wait per receive; short so stop() is quick even if an abort is not honoured. */
  waitTimeSeconds?: number;
  handler: (event: SQSEvent) => Promise<unknown>;
  log: (fields: Record<string, unknown>) => void;
  name: string;
}

export interface Poller {
  /** Batches handed to the handler and not yet settled. */
  readonly inFlight: number;
  stop(): Promise<void>;
}

// SQS returns at most 10 messages per receive.
const SQS_MAX_RECEIVE = 10;

export function startPoller(options: PollerOptions): Poller {
  let stopped = false;
  let inFlight = 0;
  const abort = new AbortController();
  const wait = options.waitTimeSeconds ?? 2;

  const receive = async (max: number, waitSeconds: number): Promise<Message[]> => {
    const out = await options.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: options.queueUrl,
        MaxNumberOfMessages: Math.min(SQS_MAX_RECEIVE, max),
        WaitTimeSeconds: waitSeconds,
        // Messages received early in a batching window must stay hidden until the batch is handled.
        VisibilityTimeout: options.visibilityTimeoutSeconds + Math.ceil(options.maxBatchingWindowSeconds),
        MessageSystemAttributeNames: ['All'],
        MessageAttributeNames: ['All'],
      }),
      { abortSignal: abort.signal },
    );
    return out.Messages ?? [];
  };

  const collect = async (): Promise<Message[]> => {
    const batch = await receive(options.batchSize, wait);
    if (batch.length === 0) return batch;
    const windowEnds = Date.now() + options.maxBatchingWindowSeconds * 1000;
    // Keep filling while the batch is short: within the window, or (window 0) while the queue
    // still hands out full receives — the same greedy fill Lambda's pollers do.
    while (!stopped && batch.length < options.batchSize) {
      const remainingMs = windowEnds - Date.now();
      const more = await receive(
        options.batchSize - batch.length,
        remainingMs > 1000 ? Math.min(wait, Math.floor(remainingMs / 1000)) : 0,
      );
      batch.push(...more);
      if (more.length === 0 && Date.now() >= windowEnds) break;
      // Less than a second of window left: short sleeps instead of a tight receive loop.
      if (more.length === 0) await new Promise((r) => setTimeout(r, Math.min(100, Math.max(0, remainingMs))));
      if (more.length < SQS_MAX_RECEIVE && options.maxBatchingWindowSeconds === 0) break;
    }
    return batch;
  };

  /**
   * Keeps an in-flight batch hidden while its handler runs. In AWS the queue's visibility timeout
   * is ≥ 6× the function timeout, so a running invocation never sees its messages redelivered;
   * locally the timeout is seconds (so failures retry quickly), which a long handler — a reconcile
   * segment — would outlive. Extending visibility while the handler runs gives both.
   */
  const heartbeat = (messages: Message[]): (() => void) => {
    const every = Math.max(500, (options.visibilityTimeoutSeconds * 1000) / 2);
    const timer = setInterval(() => {
      for (let i = 0; i < messages.length; i += SQS_MAX_RECEIVE) {
        options.sqs
          .send(
            new ChangeMessageVisibilityBatchCommand({
              QueueUrl: options.queueUrl,
              Entries: messages.slice(i, i + SQS_MAX_RECEIVE).map((m, j) => ({
                Id: String(j),
                ReceiptHandle: m.ReceiptHandle,
                VisibilityTimeout: options.visibilityTimeoutSeconds,
              })),
            }),
          )
          .catch((err: Error) =>
            options.log({ event: 'visibility_extend_failed', queue: options.name, error: err.message }),
          );
      }
    }, every);
    return () => clearInterval(timer);
  };

  const process = async (messages: Message[]): Promise<void> => {
    const event: SQSEvent = { Records: messages.map((m) => toRecord(m, options)) };
    let failedIds: Set<string>;
    const stopHeartbeat = heartbeat(messages);
    try {
      const result = (await options.handler(event)) as SQSBatchResponse | undefined | null;
      failedIds = failuresOf(result, event);
    } catch (err) {
      options.log({
        event: 'batch_failed',
        queue: options.name,
        error: (err as Error).message,
        messageIds: messages.map((m) => m.MessageId),
      });
      logLastAttempts(messages, new Set(messages.map((m) => m.MessageId ?? '')), options);
      return;
    } finally {
      stopHeartbeat();
    }
    if (failedIds.size > 0) {
      options.log({ event: 'batch_item_failures', queue: options.name, messageIds: [...failedIds] });
      logLastAttempts(messages, failedIds, options);
    }
    const done = messages.filter((m) => !failedIds.has(m.MessageId ?? ''));
    for (let i = 0; i < done.length; i += SQS_MAX_RECEIVE) {
      const chunk = done.slice(i, i + SQS_MAX_RECEIVE);
      const out = await options.sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: options.queueUrl,
          Entries: chunk.map((m, j) => ({ Id: String(j), ReceiptHandle: m.ReceiptHandle })),
        }),
      );
      for (const f of out.Failed ?? [])
        options.log({ event: 'delete_failed', queue: options.name, error: f.Message, code: f.Code });
    }
  };

  const loop = (async () => {
    while (!stopped) {
      let messages: Message[];
      try {
        messages = await collect();
      } catch (err) {
        if (stopped) break;
        options.log({ event: 'receive_failed', queue: options.name, error: (err as Error).message });
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      if (messages.length === 0) continue;
      inFlight++;
      try {
        await process(messages);
      } catch (err) {
        options.log({ event: 'poller_error', queue: options.name, error: (err as Error).message });
      } finally {
        inFlight--;
      }
    }
  })();

  return {
    get inFlight() {
      return inFlight;
    },
    async stop() {
      stopped = true;
      abort.abort();
      await loop;
    },
  };
}

/**
 * The set of message ids to keep. Lambda's rules: null/empty → all succeeded; an entry whose
 * itemIdentifier is missing or not in the batch → the whole batch failed.
 */
function failuresOf(result: SQSBatchResponse | undefined | null, event: SQSEvent): Set<string> {
  const all = new Set(event.Records.map((r) => r.messageId));
  if (!result || typeof result !== 'object' || !Array.isArray(result.batchItemFailures)) return new Set();
  const failed = new Set<string>();
  for (const f of result.batchItemFailures) {
    const id = f?.itemIdentifier;
    if (typeof id !== 'string' || !all.has(id)) return all;
    failed.add(id);
  }
  return failed;
}

function logLastAttempts(messages: Message[], failed: Set<string>, options: PollerOptions): void {
  for (const m of messages) {
    if (!failed.has(m.MessageId ?? '')) continue;
    const count = Number(m.Attributes?.ApproximateReceiveCount ?? '1');
    if (count >= options.maxReceiveCount)
      options.log({
        event: 'dlq_move',
        queue: options.name,
        messageId: m.MessageId,
        receiveCount: count,
        note: `failed on its last attempt (${count}/${options.maxReceiveCount}); SQS moves it to the DLQ`,
      });
  }
}

function toRecord(m: Message, options: PollerOptions): SQSRecord {
  const a = m.Attributes ?? {};
  const attrs: SQSMessageAttributes = {};
  for (const [name, v] of Object.entries(m.MessageAttributes ?? {})) {
    attrs[name] = {
      dataType: v.DataType ?? 'String',
      ...(v.StringValue !== undefined ? { stringValue: v.StringValue } : {}),
      ...(v.BinaryValue !== undefined ? { binaryValue: Buffer.from(v.BinaryValue).toString('base64') } : {}),
      stringListValues: [],
      binaryListValues: [],
    };
  }
  return {
    messageId: m.MessageId ?? '',
    receiptHandle: m.ReceiptHandle ?? '',
    body: m.Body ?? '',
    attributes: {
      ApproximateReceiveCount: a.ApproximateReceiveCount ?? '1',
      SentTimestamp: a.SentTimestamp ?? String(Date.now()),
      SenderId: a.SenderId ?? 'AIDALOCALSTRATA',
      ApproximateFirstReceiveTimestamp: a.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
    },
    messageAttributes: attrs,
    md5OfBody: m.MD5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN: options.queueArn,
    awsRegion: options.region,
  };
}
