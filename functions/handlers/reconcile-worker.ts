/**
 * Reconcile worker (SQS-triggered, batch size 1): parses a shard message, runs one segment
 * (core/reconcile/segment.ts) and reports the counts as Powertools metrics. A message that fails
 * is reported in batchItemFailures, comes back after the visibility timeout and lands in the DLQ
 * after maxReceiveCount attempts; redelivery is idempotent (see segment.ts). A message failing on
 * its last allowed receive first fails its shard and run in the ledger: otherwise the run would
 * stay `running` for ever — holding off the scheduler and leaving `strata reconcile --wait` polling.
 */
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { z } from 'zod';
import { Metric, reconcileCountMetric } from '../core/metrics.ts';
import { runSegment } from '../core/reconcile/segment.ts';
import { COUNT_FIELDS, type ShardMessage } from '../core/reconcile/types.ts';
import { getLogger, getMetrics, MetricUnit } from './http/index.ts';
import { reconcileWiring } from './reconcile-wiring.ts';
import { lambdas, queueConsumers } from './routes.ts';

const consumer = queueConsumers.find((c) => c.lambda === 'reconcileWorker');
/** Receives SQS allows before the DLQ (the redrive policy CDK and the local stack both set). */
export const MAX_RECEIVE_COUNT = consumer?.maxReceiveCount ?? 5;
/**
 * A segment claim lasts as long as the worker Lambda can run: a live worker never loses it, and a
 * crashed worker's claim has expired before the visibility timeout (≥ 6× this) redelivers.
 */
export const SEGMENT_LEASE_MS = lambdas.reconcileWorker.timeoutSeconds * 1000;

const rangeSchema = z.object({ prefix: z.string(), from: z.string().optional(), to: z.string().optional() });
export const shardMessageSchema = z.object({
  v: z.literal(1),
  runId: z.string().min(1),
  shardId: z.number().int().min(0),
  segment: z.number().int().min(0),
  range: rangeSchema,
  after: z.string().optional(),
  continuationToken: z.string().optional(),
  dryRun: z.boolean(),
  graceSeconds: z.number().int().min(0),
}) satisfies z.ZodType<ShardMessage>;

// Outside Lambda (a direct call in a script) there is no deadline: act as if a full budget remains.
const NO_DEADLINE = () => Number.MAX_SAFE_INTEGER;

export async function handler(event: SQSEvent, context?: Partial<Context>): Promise<SQSBatchResponse> {
  const w = reconcileWiring();
  const env = w.config.env;
  const logger = getLogger();
  const metrics = getMetrics();
  const failures: SQSBatchResponse['batchItemFailures'] = [];
  const started = Date.now();
  const lambdaRemaining = context?.getRemainingTimeInMillis?.bind(context) ?? NO_DEADLINE;
  const remainingMs = () => {
    const left = lambdaRemaining();
    if (env.STRATA_RECONCILE_SEGMENT_MAX_MS === 0) return left;
    return Math.min(
      left,
      env.STRATA_RECONCILE_SEGMENT_MAX_MS + env.STRATA_RECONCILE_RESERVE_MS - (Date.now() - started),
    );
  };
  try {
    for (const record of event.Records) {
      let message: ShardMessage;
      try {
        message = shardMessageSchema.parse(JSON.parse(record.body)) as ShardMessage;
      } catch (err) {
        // A malformed message can never succeed: log it and let it go (no retry, no DLQ churn).
        logger.error('malformed reconcile message dropped', {
          messageId: record.messageId,
          error: (err as Error).message,
        });
        metrics.addMetric(Metric.ReconcileMalformedMessages, MetricUnit.Count, 1);
        continue;
      }
      try {
        const result = await runSegment(
          message,
          { listing: w.listing, index: w.index, ledger: w.ledger, queue: w.queue },
          {
            dataPrefix: w.config.dataPrefix,
            pageSize: env.STRATA_RECONCILE_PAGE_SIZE,
            reserveMs: env.STRATA_RECONCILE_RESERVE_MS,
            remainingMs,
            leaseMs: SEGMENT_LEASE_MS,
          },
        );
        if (result.duplicate) {
          logger.info('reconcile segment skipped: claimed by another delivery, already done, or run over', {
            runId: message.runId,
            shardId: message.shardId,
            segment: message.segment,
            resentContinuation: result.resent !== undefined,
          });
          metrics.addMetric(Metric.ReconcileDuplicateSegments, MetricUnit.Count, 1);
          continue;
        }
        for (const f of COUNT_FIELDS) {
          if (result.counts[f] > 0)
            metrics.addMetric(reconcileCountMetric(f), MetricUnit.Count, result.counts[f]);
        }
        metrics.addMetric(Metric.ReconcileSegments, MetricUnit.Count, 1);
        logger.info('reconcile segment done', {
          runId: message.runId,
          shardId: message.shardId,
          segment: message.segment,
          dryRun: message.dryRun,
          pages: result.pages,
          continued: result.next !== undefined,
          ...result.counts,
        });
      } catch (err) {
        logger.error('reconcile segment failed', {
          runId: message.runId,
          shardId: message.shardId,
          segment: message.segment,
          error: err as Error,
        });
        metrics.addMetric(Metric.ReconcileSegmentFailures, MetricUnit.Count, 1);
        const attempts = Number(record.attributes?.ApproximateReceiveCount ?? '1');
        if (attempts >= MAX_RECEIVE_COUNT) {
          // Last allowed receive: SQS moves the message to the DLQ next. Fail the run now.
          await w.ledger
            .failShard(message, { attempts, error: (err as Error).message ?? String(err) })
            .then(() => metrics.addMetric(Metric.ReconcileShardFailures, MetricUnit.Count, 1))
            .catch((e: unknown) =>
              logger.error('could not mark the reconcile shard failed', {
                runId: message.runId,
                shardId: message.shardId,
                error: e as Error,
              }),
            );
        }
        // Still reported as failed: the DLQ keeps the message for inspection and the alarm on its depth.
        failures.push({ itemIdentifier: record.messageId });
      }
    }
  } finally {
    if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
  }
  return { batchItemFailures: failures };
}
