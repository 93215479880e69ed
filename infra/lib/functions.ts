/**
 * Builds StrataFunctions from the deployment map and applies their access from function-access.ts.
 * Stacks only choose which Lambdas they hold; settings and grants are never restated per stack.
 */
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import {
  httpRoutes,
  type LambdaName,
  lambdas,
  queueConsumers,
  schedules,
} from '../../functions/handlers/routes.ts';
import { functionAccess } from '../config/function-access.ts';
import type { StageConfig } from '../config/stages.ts';
import { type DatabaseAccess, StrataFunction, type UpstashAccess } from '../constructs/strata-function.ts';
import type { FunctionNetwork } from '../stacks/database-stack.ts';
import { importDataBucket } from './bucket.ts';

export interface FunctionResources {
  stage: StageConfig;
  database: DatabaseAccess;
  network?: FunctionNetwork;
  upstash?: UpstashAccess;
  queues: Partial<Record<'ingest' | 'reconcile', sqs.IQueue>>;
}

export type Placement = 'api' | 'workers' | 'database';

/**
 * Where a Lambda lives: `migrate` with the database it migrates, anything with an HTTP route in the
 * API stack, everything else (queue consumers, schedules) in the workers stack.
 */
export function placementOf(name: LambdaName): Placement {
  if (name === 'migrate') return 'database';
  if (httpRoutes.some((r) => r.lambda === name)) return 'api';
  return 'workers';
}

export function lambdasIn(placement: Placement): LambdaName[] {
  const names = (Object.keys(lambdas) as LambdaName[]).filter((n) => placementOf(n) === placement);
  if (placement === 'api') {
    for (const n of names) {
      if (queueConsumers.some((c) => c.lambda === n) || schedules.some((s) => s.lambda === n))
        throw new Error(
          `Lambda "${n}" has an HTTP route and a queue/schedule trigger; split it in routes.ts`,
        );
    }
  }
  return names;
}

/** PascalCase construct id for a Lambda name (`reconcileWorker` → `ReconcileWorker`). */
export function constructId(name: LambdaName): string {
  return name[0]!.toUpperCase() + name.slice(1);
}

export function createFunctions(
  scope: Construct,
  names: LambdaName[],
  res: FunctionResources,
): Record<string, StrataFunction> {
  const out: Record<string, StrataFunction> = {};
  const storage = { bucket: importDataBucket(scope, res.stage), dataPrefix: res.stage.dataPrefix };
  for (const name of names) {
    const fn = new StrataFunction(scope, constructId(name), {
      name,
      spec: lambdas[name],
      stage: res.stage,
      storage,
      network: res.network,
    });
    const access = functionAccess[name];
    for (const verb of access.bucket) {
      if (verb === 'read') fn.bindBucketRead();
      else if (verb === 'presignUpload') fn.bindPresignUpload();
      else if (verb === 'list') fn.bindBucketList();
      else if (verb === 'delete') fn.bindBucketDelete();
      else fn.bindAbortUploads();
    }
    if (access.database) fn.bindDatabase(res.database);
    if (access.upstash && res.upstash) fn.bindUpstash(res.upstash);
    for (const q of access.sendTo) {
      const queue = res.queues[q];
      if (!queue) throw new Error(`Lambda "${name}" sends to queue "${q}", which this stack was not given`);
      fn.bindQueueSend(q, queue);
    }
    out[name] = fn;
  }
  return out;
}

/** The Upstash credentials of a stage, as the functions of one stack reach them. */
export function upstashAccess(scope: Construct, stage: StageConfig): UpstashAccess | undefined {
  const u = stage.upstash;
  if (u.kind === 'none') return undefined;
  if (u.kind === 'plain') return { kind: 'plain', url: u.url, token: u.token };
  // By name: the secret is created once by the operator (docs/deploy.md), not by the stack, so a
  // redeploy never overwrites real credentials with a placeholder.
  return {
    kind: 'secret',
    secret: secretsmanager.Secret.fromSecretNameV2(scope, 'UpstashSecret', u.secretName),
  };
}
