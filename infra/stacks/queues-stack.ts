/**
 * Queues: ingest (S3 events → indexer) and reconcile (shards → workers), each with a DLQ. Visibility
 * timeouts and redrive counts are derived from functions/handlers/routes.ts, never restated.
 *
 * The bucket → ingest-queue notification lives here rather than in the storage stack: the queue
 * policy must name the bucket and the notification must name the queue, and keeping both in the
 * stack that depends on the bucket avoids a cross-stack cycle (the bucket is referenced by name).
 */
import { Duration, Stack, type StackProps } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3n from 'aws-cdk-lib/aws-s3-notifications';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { lambdas, type QueueName, queueConsumers } from '../../functions/handlers/routes.ts';
import type { StageConfig } from '../config/stages.ts';
import { importDataBucket } from '../lib/bucket.ts';
import { acknowledge } from '../lib/nag.ts';

export interface QueuesStackProps extends StackProps {
  stage: StageConfig;
  dataPrefix: string;
}

export interface StrataQueue {
  queue: sqs.Queue;
  dlq: sqs.Queue;
}

/**
 * AWS guidance: visibility ≥ 6× the consumer's timeout plus its batching window, so a message being
 * retried by the Lambda service is not redelivered to a second poller mid-flight.
 */
export function visibilityTimeoutFor(queue: QueueName): Duration {
  const consumers = queueConsumers.filter((c) => c.queue === queue);
  if (consumers.length === 0)
    throw new Error(`queue "${queue}" has no consumer in functions/handlers/routes.ts`);
  const seconds = Math.max(
    ...consumers.map((c) => 6 * lambdas[c.lambda].timeoutSeconds + effectiveBatchingWindowSeconds(c)),
  );
  return Duration.seconds(seconds);
}

/** SQS event sources with a batch over 10 require a batching window of at least 1 s (AWS limit). */
export function effectiveBatchingWindowSeconds(c: {
  batchSize: number;
  maxBatchingWindowSeconds: number;
}): number {
  return c.batchSize > 10 ? Math.max(1, c.maxBatchingWindowSeconds) : c.maxBatchingWindowSeconds;
}

function maxReceiveCountFor(queue: QueueName): number {
  // Several consumers of one queue would share one redrive policy: take the most patient.
  return Math.max(...queueConsumers.filter((c) => c.queue === queue).map((c) => c.maxReceiveCount));
}

export class QueuesStack extends Stack {
  readonly queues: Record<QueueName, StrataQueue>;

  constructor(scope: Construct, id: string, props: QueuesStackProps) {
    super(scope, id, props);
    const names = [...new Set(queueConsumers.map((c) => c.queue))] as QueueName[];
    const make = (name: QueueName): StrataQueue => {
      const title = name[0]!.toUpperCase() + name.slice(1);
      const dlq = new sqs.Queue(this, `${title}Dlq`, {
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        // The maximum: a failed event must survive a long weekend before anyone redrives it.
        retentionPeriod: Duration.days(14),
      });
      const queue = new sqs.Queue(this, `${title}Queue`, {
        // SSE-SQS: S3 notifications cannot publish to a queue encrypted with the AWS-managed KMS key.
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        visibilityTimeout: visibilityTimeoutFor(name),
        retentionPeriod: Duration.days(4),
        deadLetterQueue: { queue: dlq, maxReceiveCount: maxReceiveCountFor(name) },
      });
      return { queue, dlq };
    };
    this.queues = Object.fromEntries(names.map((n) => [n, make(n)])) as Record<QueueName, StrataQueue>;
    for (const q of Object.values(this.queues)) {
      acknowledge(q.dlq, ['SQS3', 'This queue is itself a dead-letter queue.']);
    }

    // Imported by name so the notification resource is created here (see the module note).
    const bucket = importDataBucket(this, props.stage);
    const toIngest = new s3n.SqsDestination(this.queues.ingest.queue);
    const filter = { prefix: props.dataPrefix };
    bucket.addEventNotification(s3.EventType.OBJECT_CREATED, toIngest, filter);
    bucket.addEventNotification(s3.EventType.OBJECT_REMOVED, toIngest, filter);
    // Lifecycle rules (expire current or noncurrent versions) remove objects without an
    // ObjectRemoved event; without these the index would keep them until reconcile found them.
    bucket.addEventNotification(s3.EventType.LIFECYCLE_EXPIRATION, toIngest, filter);
    // CDK's singleton that applies the notification configuration at deploy.
    for (const child of this.node.children) {
      if (child.node.id.startsWith('BucketNotificationsHandler')) {
        acknowledge(child, [
          'IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
          'CDK-provided handler that sets bucket notifications at deploy; logs only.',
        ]);
      }
    }
  }
}
