/**
 * Observability: alarms that mean "someone should look" (a DLQ has messages, a function errors or is
 * throttled, the oldest queued event is too old, the API returns 5xx, the index lags, Redis keeps
 * failing, Aurora is at its maximum capacity) to an encrypted SNS topic, and one dashboard with the same signals. docs/operations.md
 * is the runbook: what each alarm means and what to do.
 *
 * Strata's own metrics are read through functions/core/metrics.ts (the names the handlers emit,
 * the stage's namespace and the one `service` dimension Powertools adds): an alarm whose namespace,
 * name or dimension set differs from the emitted EMF by one character never fires.
 */
import { CfnOutput, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import type * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as rds from 'aws-cdk-lib/aws-rds';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subs from 'aws-cdk-lib/aws-sns-subscriptions';
import type { Construct } from 'constructs';
import { METRICS_SERVICE, Metric, type MetricName, metricsNamespace } from '../../functions/core/metrics.ts';
import type { QueueName } from '../../functions/handlers/routes.ts';
import type { StageConfig } from '../config/stages.ts';
import type { StrataFunction } from '../constructs/strata-function.ts';
import type { StrataQueue } from './queues-stack.ts';

export interface ObservabilityStackProps extends StackProps {
  stage: StageConfig;
  functions: StrataFunction[];
  queues: Record<QueueName, StrataQueue>;
  api: apigw.IHttpApi;
  /** The Aurora cluster, when the stage creates one (not with an external database). */
  cluster?: rds.DatabaseCluster;
}

export class ObservabilityStack extends Stack {
  readonly topic: sns.Topic;
  readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: ObservabilityStackProps) {
    super(scope, id, props);
    const { stage } = props;

    const key = new kms.Key(this, 'AlarmTopicKey', {
      description: 'Strata alarm topic',
      enableKeyRotation: true,
    });
    // CloudWatch must be able to publish to the encrypted topic.
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        resources: ['*'],
      }),
    );
    this.topic = new sns.Topic(this, 'Alarms', {
      masterKey: key,
      enforceSSL: true,
      displayName: 'Strata alarms',
    });
    if (stage.alarms.email) this.topic.addSubscription(new subs.EmailSubscription(stage.alarms.email));
    const action = new cwActions.SnsAction(this.topic);

    const alarm = (id: string, props: cloudwatch.CreateAlarmOptions & { metric: cloudwatch.Metric }) => {
      const a = props.metric.createAlarm(this, id, {
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        ...props,
      });
      a.addAlarmAction(action);
      this.alarms.push(a as cloudwatch.Alarm);
      return a;
    };

    const fiveMinutes = Duration.minutes(5);
    for (const fn of props.functions) {
      const name = fn.lambdaName;
      alarm(`${fn.node.id}Errors`, {
        alarmDescription: `Strata ${name}: unhandled errors`,
        metric: fn.metricErrors({ period: fiveMinutes, statistic: 'Sum' }),
        // One error can be a cold-start blip that the retry absorbed; five in five minutes is a pattern.
        threshold: 5,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      });
      alarm(`${fn.node.id}Throttles`, {
        alarmDescription: `Strata ${name}: throttled (account or reserved concurrency reached)`,
        metric: fn.metricThrottles({ period: fiveMinutes, statistic: 'Sum' }),
        // Any throttle means requests or events waited on concurrency: always worth a look.
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      });
    }

    const maxAge: Record<QueueName, Duration> = {
      ingest: stage.alarms.maxIngestAge,
      reconcile: stage.alarms.maxReconcileAge,
    };
    for (const [name, q] of Object.entries(props.queues) as Array<[QueueName, StrataQueue]>) {
      alarm(`${cap(name)}DlqNotEmpty`, {
        alarmDescription: `Strata ${name}: messages in the DLQ (events that could not be processed; redrive after fixing)`,
        metric: q.dlq.metricApproximateNumberOfMessagesVisible({
          period: Duration.minutes(1),
          statistic: 'Maximum',
        }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      });
      alarm(`${cap(name)}OldestMessage`, {
        alarmDescription: `Strata ${name}: oldest message older than ${maxAge[name].toHumanString()} (consumers are behind)`,
        metric: q.queue.metricApproximateAgeOfOldestMessage({
          period: Duration.minutes(1),
          statistic: 'Maximum',
        }),
        threshold: maxAge[name].toSeconds(),
        // Three minutes in a row: a single slow batch is not lag.
        evaluationPeriods: 3,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      });
      // What the DLQ runbook needs (docs/operations.md): the redrive takes the DLQ's ARN, peeking its URL.
      new CfnOutput(this, `${cap(name)}DlqArn`, { value: q.dlq.queueArn });
      new CfnOutput(this, `${cap(name)}DlqUrl`, { value: q.dlq.queueUrl });
    }

    // Strata's own metrics (Powertools EMF): the stage's namespace, dimension `service` only.
    const strata = (metricName: MetricName, statistic: string, period = fiveMinutes) =>
      new cloudwatch.Metric({
        namespace: metricsNamespace(stage.prefix),
        metricName,
        dimensionsMap: { service: METRICS_SERVICE },
        period,
        statistic,
      });
    const sums = (title: string, width: number, names: MetricName[]) =>
      new cloudwatch.GraphWidget({ title, width, left: names.map((n) => strata(n, 'Sum')) });
    alarm('IndexLag', {
      alarmDescription: `Strata indexer: S3 changes took over ${stage.alarms.maxIngestAge.toHumanString()} to reach the index (IndexLagMs)`,
      metric: strata(Metric.IndexLagMs, 'Maximum', Duration.minutes(1)),
      // The same bound as the ingest queue's age: lag past it is what users see (a stale listing).
      // Unlike the queue age it also counts S3's notification delay and slow batches.
      threshold: stage.alarms.maxIngestAge.toMilliseconds(),
      // Three minutes in a row, as for queue age: one slow batch after a burst is not lag.
      evaluationPeriods: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    });
    alarm('RedisFailures', {
      alarmDescription:
        'Strata: Redis calls keep failing; every read is served by PostgreSQL (slower, more database load)',
      metric: strata(Metric.RedisFailures, 'Sum'),
      // After a failure each execution environment skips Redis for 2 s (RedisGuard), so a dead Redis
      // counts tens per busy environment in five minutes while a lone timeout counts one or two;
      // two periods in a row separates an outage from a blip.
      threshold: 10,
      evaluationPeriods: 2,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    });

    const api5xx = new cloudwatch.Metric({
      namespace: 'AWS/ApiGateway',
      metricName: '5xx',
      dimensionsMap: { ApiId: props.api.apiId },
      period: fiveMinutes,
      statistic: 'Sum',
    });
    alarm('Api5xx', {
      alarmDescription: 'Strata API: server errors',
      metric: api5xx,
      threshold: 10,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    });

    const acu = props.cluster?.metricACUUtilization({ period: fiveMinutes, statistic: 'Average' });
    if (acu) {
      alarm('DatabaseAtMaxCapacity', {
        alarmDescription:
          'Strata database: Aurora near its maximum capacity (serverlessV2MaxCapacity); queries queue, functions slow down and time out',
        metric: acu,
        // ACUUtilization is the share of the configured maximum in use. Above 90 % for 15 minutes the
        // cluster cannot scale further: a short peak scales and passes, a plateau needs a higher max.
        threshold: 90,
        evaluationPeriods: 3,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      });
    }

    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', { dashboardName: `${stage.prefix}` });
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Queues: oldest message (s)',
        left: Object.values(props.queues).map((q) => q.queue.metricApproximateAgeOfOldestMessage()),
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'DLQs: visible messages',
        left: Object.values(props.queues).map((q) => q.dlq.metricApproximateNumberOfMessagesVisible()),
        width: 12,
      }),
    );
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Errors',
        left: props.functions.map((f) => f.metricErrors({ label: f.lambdaName })),
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Throttles',
        left: props.functions.map((f) => f.metricThrottles({ label: f.lambdaName })),
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Duration p99 (ms)',
        left: props.functions.map((f) => f.metricDuration({ label: f.lambdaName, statistic: 'p99' })),
        width: 8,
      }),
    );
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'API 5xx / unexpected errors',
        left: [api5xx, strata(Metric.ApiErrors, 'Sum')],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Index lag, max (ms)',
        left: [strata(Metric.IndexLagMs, 'Maximum', Duration.minutes(1))],
        width: 8,
      }),
      sums('Indexer events / failed messages / Redis failures', 8, [
        Metric.IndexerEvents,
        Metric.IndexerFailures,
        Metric.RedisFailures,
      ]),
    );
    dashboard.addWidgets(
      sums('Reconcile: segments / failed attempts / failed shards', 12, [
        Metric.ReconcileSegments,
        Metric.ReconcileSegmentFailures,
        Metric.ReconcileShardFailures,
      ]),
      ...(acu
        ? [new cloudwatch.GraphWidget({ title: 'Database: ACU utilisation (%)', left: [acu], width: 12 })]
        : []),
    );

    new CfnOutput(this, 'AlarmTopicArn', { value: this.topic.topicArn });
  }
}

function cap(s: string): string {
  return s[0]!.toUpperCase() + s.slice(1);
}
