/** The reconcile queue: shard messages as JSON, sent in SQS batches of 10. */
import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { UnavailableError } from '../../core/errors.ts';
import type { ShardQueue } from '../../core/reconcile/ports.ts';
import type { ShardMessage } from '../../core/reconcile/types.ts';

// SendMessageBatch takes at most 10 entries.
const SQS_BATCH = 10;

/**
 * JSON with every non-ASCII character escaped. Shard boundaries and resume points are S3 keys,
 * which may hold any Unicode, but SQS accepts only XML characters in a body (#x9 #xA #xD
 * #x20–#xD7FF #xE000–#xFFFD, and #x10000+ in AWS but not in every emulator): a key with U+FFFE or
 * an emoji would make the message unsendable. JSON.parse restores the exact string.
 */
export function encodeMessage(message: ShardMessage): string {
  return JSON.stringify(message).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

export class SqsShardQueue implements ShardQueue {
  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string,
  ) {}

  async send(messages: ShardMessage[]): Promise<void> {
    for (let i = 0; i < messages.length; i += SQS_BATCH) {
      const chunk = messages.slice(i, i + SQS_BATCH);
      let entries = chunk.map((m, j) => ({ Id: String(j), MessageBody: encodeMessage(m) }));
      // Retry only the entries SQS reported as failed (throttling); a second failure is an error.
      for (let attempt = 0; entries.length > 0; attempt++) {
        const out = await this.sqs.send(
          new SendMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: entries }),
        );
        const failed = new Set((out.Failed ?? []).map((f) => f.Id));
        if (failed.size === 0) break;
        if (attempt >= 2) {
          const first = out.Failed?.[0];
          throw new UnavailableError(
            `could not enqueue ${failed.size} reconcile shard message(s) on ${this.queueUrl}: ${first?.Code} ${first?.Message}`,
          );
        }
        entries = entries.filter((e) => failed.has(e.Id));
      }
    }
  }
}
