/**
 * Reconcile planner (EventBridge schedule): starts a run over the whole data prefix, unless a
 * scheduled or on-demand run is still in progress — runs pile up otherwise when one takes longer
 * than the schedule period. A run stuck for longer than STALE_RUN_SECONDS (e.g. its messages went
 * to the DLQ) no longer blocks new ones.
 */

import { Metric } from '../core/metrics.ts';
import { startRun } from '../core/reconcile/plan.ts';
import { getLogger, getMetrics, MetricUnit } from './http/index.ts';
import { reconcileWiring } from './reconcile-wiring.ts';

/** A day: longer than any healthy run, short enough that one stuck run costs one day of checks. */
export const STALE_RUN_SECONDS = 86_400;

export async function handler(
  _event?: unknown,
): Promise<{ runId?: string; skipped?: string; shards?: number }> {
  const w = reconcileWiring();
  const logger = getLogger();
  const metrics = getMetrics();
  try {
    const running = await w.ledger.running(STALE_RUN_SECONDS);
    if (running) {
      logger.info('reconcile run still in progress; not starting another', { runId: running });
      return { skipped: `run ${running} is still in progress` };
    }
    const { runId, shards } = await startRun(
      { trigger: 'schedule', graceSeconds: w.config.env.STRATA_RECONCILE_GRACE_SECONDS },
      { listing: w.listing, runs: w.ledger, queue: w.queue },
      { dataPrefix: w.config.dataPrefix, maxShards: w.config.env.STRATA_RECONCILE_MAX_SHARDS },
    );
    metrics.addMetric(Metric.ReconcileRunsStarted, MetricUnit.Count, 1);
    metrics.addMetric(Metric.ReconcileShards, MetricUnit.Count, shards.length);
    logger.info('reconcile run planned', { runId, shards: shards.length });
    return { runId, shards: shards.length };
  } finally {
    if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
  }
}
