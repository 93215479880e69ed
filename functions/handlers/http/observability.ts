/**
 * Powertools logger and metrics, one instance each per execution environment (cold start).
 * Metrics are CloudWatch EMF lines flushed at the end of each invocation; set
 * POWERTOOLS_METRICS_DISABLED=true locally to keep stdout quiet (the local stack does).
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { DEFAULT_METRICS_NAMESPACE, METRICS_SERVICE } from '../../core/metrics.ts';

export { MetricUnit };

let logger: Logger | undefined;
let metrics: Metrics | undefined;

export function getLogger(): Logger {
  logger ??= new Logger({
    serviceName: METRICS_SERVICE,
    logLevel: (process.env.STRATA_LOG_LEVEL ?? process.env.POWERTOOLS_LOG_LEVEL ?? 'INFO') as 'INFO',
  });
  return logger;
}

export function getMetrics(): Metrics {
  // The deployment sets POWERTOOLS_METRICS_NAMESPACE per stage (infra/constructs/strata-function.ts);
  // an explicit `namespace` option would override it, so the env var is read here.
  metrics ??= new Metrics({
    namespace: process.env.POWERTOOLS_METRICS_NAMESPACE || DEFAULT_METRICS_NAMESPACE,
    serviceName: METRICS_SERVICE,
  });
  return metrics;
}
