/**
 * Composes Strata's stacks for one stage. bin/app.ts calls it for `cdk synth`/`deploy`; the tests
 * call it directly to assert on the templates.
 */
import type { App } from 'aws-cdk-lib';
import type { StageConfig } from '../config/stages.ts';
import { ApiStack } from '../stacks/api-stack.ts';
import { DatabaseStack } from '../stacks/database-stack.ts';
import { ObservabilityStack } from '../stacks/observability-stack.ts';
import { QueuesStack } from '../stacks/queues-stack.ts';
import { StorageStack } from '../stacks/storage-stack.ts';
import { WorkersStack } from '../stacks/workers-stack.ts';

export interface StrataStacks {
  storage: StorageStack;
  queues: QueuesStack;
  database: DatabaseStack;
  api: ApiStack;
  workers: WorkersStack;
  observability: ObservabilityStack;
}

export function buildStrata(app: App, stage: StageConfig): StrataStacks {
  const common = { env: stage.env, tags: { project: 'strata', stage: stage.stage } };
  const name = (concern: string) => `${stage.prefix}-${concern}`;

  const storage = new StorageStack(app, name('storage'), { ...common, stage });
  const queues = new QueuesStack(app, name('queues'), { ...common, stage, dataPrefix: stage.dataPrefix });
  const database = new DatabaseStack(app, name('database'), { ...common, stage });
  const resources = {
    stage,
    database: database.access,
    network: database.network,
    queues: { ingest: queues.queues.ingest.queue, reconcile: queues.queues.reconcile.queue },
  };
  const api = new ApiStack(app, name('api'), { ...common, ...resources });
  const workers = new WorkersStack(app, name('workers'), { ...common, ...resources });
  // The bucket is referenced by name, not export (lib/bucket.ts), so the ordering is explicit.
  for (const s of [queues, database, api, workers]) s.addStackDependency(storage, 'the data bucket exists');
  // Functions that serve traffic must not come up before the schema they query exists.
  api.addStackDependency(database, 'migrations run before handlers serve');
  workers.addStackDependency(database, 'migrations run before consumers index');
  const observability = new ObservabilityStack(app, name('observability'), {
    ...common,
    stage,
    functions: [...Object.values(api.functions), ...Object.values(workers.functions), database.migrate],
    queues: queues.queues,
    api: api.api,
    cluster: database.cluster,
  });
  return { storage, queues, database, api, workers, observability };
}
