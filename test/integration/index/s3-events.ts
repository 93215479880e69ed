/** Builds SQS records carrying AWS-shaped S3 event notifications (via local/s3-events.ts). */

import { randomUUID } from 'node:crypto';
import type { SQSRecord } from 'aws-lambda';
import * as events from '../../../local/s3-events.ts';

export const BUCKET = 'test-bucket';
export const PREFIX = 'data/';

export function sqsRecord(body: string, messageId: string = randomUUID()): SQSRecord {
  return {
    messageId,
    receiptHandle: messageId,
    body,
    attributes: {} as SQSRecord['attributes'],
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:ingest',
    awsRegion: 'us-east-1',
  };
}

export function putEvent(
  key: string,
  sequencer: number,
  size: number,
  etag: string,
  time = new Date(),
): string {
  return events.s3EventMessage([
    events.buildS3EventRecord({
      eventName: 'ObjectCreated:Put',
      bucket: BUCKET,
      key,
      sequencer: seq(sequencer),
      size,
      eTag: etag,
      eventTime: time,
    }),
  ]);
}

export function deleteEvent(key: string, sequencer: number, time = new Date()): string {
  return events.s3EventMessage([
    events.buildS3EventRecord({
      eventName: 'ObjectRemoved:Delete',
      bucket: BUCKET,
      key,
      sequencer: seq(sequencer),
      eventTime: time,
    }),
  ]);
}

export function seq(n: number): string {
  return n.toString(16).toUpperCase().padStart(16, '0');
}
