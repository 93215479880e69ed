/**
 * Workers: the queue consumers and scheduled functions of functions/handlers/routes.ts, wired with
 * SQS event source mappings (partial batch failures reported per message) and EventBridge rules.
 */
import { Duration, Stack, type StackProps } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { Construct } from 'constructs';
import { queueConsumers, schedules } from '../../functions/handlers/routes.ts';
import type { StrataFunction } from '../constructs/strata-function.ts';
import {
  constructId,
  createFunctions,
  type FunctionResources,
  lambdasIn,
  upstashAccess,
} from '../lib/functions.ts';
import { effectiveBatchingWindowSeconds } from './queues-stack.ts';

export interface WorkersStackProps extends StackProps, Omit<FunctionResources, 'upstash'> {}

export class WorkersStack extends Stack {
  readonly functions: Record<string, StrataFunction>;

  constructor(scope: Construct, id: string, props: WorkersStackProps) {
    super(scope, id, props);
    this.functions = createFunctions(this, lambdasIn('workers'), {
      ...props,
      upstash: upstashAccess(this, props.stage),
    });

    for (const c of queueConsumers) {
      const fn = this.functions[c.lambda];
      const queue = props.queues[c.queue];
      if (!fn || !queue)
        throw new Error(`consumer ${c.lambda} ← ${c.queue}: function or queue not in this stack`);
      fn.addEventSource(
        new SqsEventSource(queue, {
          batchSize: c.batchSize,
          maxBatchingWindow: Duration.seconds(effectiveBatchingWindowSeconds(c)),
          // One poison message must not send its 99 batch-mates back to the queue with it.
          reportBatchItemFailures: true,
        }),
      );
    }

    for (const s of schedules) {
      const fn = this.functions[s.lambda];
      if (!fn) throw new Error(`schedule for ${s.lambda}: function not in this stack`);
      new events.Rule(this, `${constructId(s.lambda)}Schedule`, {
        description: `Strata: run ${s.lambda} every ${s.everyMinutes} min`,
        schedule: events.Schedule.rate(Duration.minutes(s.everyMinutes)),
        // Both scheduled jobs are idempotent sweeps: a couple of retries cover a cold-start failure,
        // and the next tick covers the rest.
        targets: [new targets.LambdaFunction(fn, { retryAttempts: 2, maxEventAge: Duration.minutes(15) })],
      });
    }
  }
}
