/**
 * Powertools logger and metrics, one instance each per execution environment (cold start).
 * Metrics are CloudWatch EMF lines flushed at the end of each invocation; set
 * POWERTOOLS_METRICS_DISABLED=true locally to keep stdout quiet (the local stack does).
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';

export { MetricUnit };

let logger: Logger | undefined;
let metrics: Metrics | undefined;

export function getLogger(): Logger {
  logger ??= new Logger({
    serviceName: 'strata',
    logLevel: (process.env.STRATA_LOG_LEVEL ?? process.env.POWERTOOLS_LOG_LEVEL ?? 'INFO') as 'INFO',
  });
  return logger;
}

export function getMetrics(): Metrics {
  metrics ??= new Metrics({ namespace: 'Strata', serviceName: 'strata' });
  return metrics;
}
