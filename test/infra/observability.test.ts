/**
 * Every alarm and dashboard metric of the observability stack names a metric that exists, with
 * the exact dimension set it is published with — a CloudWatch alarm on any other combination
 * stays at OK (no data) for ever. AWS service metrics are checked against the names and
 * dimensions AWS documents for Lambda, SQS and HTTP APIs; Strata's own metrics against
 * functions/core/metrics.ts, the deployed functions' POWERTOOLS_METRICS_NAMESPACE, and the EMF
 * line the handlers' own code paths print.
 */
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Redis } from '@upstash/redis';
import type { SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  DEFAULT_METRICS_NAMESPACE,
  METRICS_SERVICE,
  Metric,
  metricsNamespace,
} from '../../functions/core/metrics.ts';
import { stageConfig } from '../../infra/config/stages.ts';
import { REPO_ROOT } from '../../infra/constructs/strata-function.ts';
import { filesUnder } from './observability-files.ts';
import { type Synth, synthStage } from './support.ts';

type Json = Record<string, any>;

/**
 * AWS metrics the stack may use: namespace → metric → the dimension keys it is published with
 * (Lambda: per FunctionName; SQS: per QueueName; API Gateway HTTP APIs: `5xx` etc. per ApiId —
 * not REST's `5XXError`/ApiName).
 */
const AWS_METRICS: Record<string, Record<string, string[]>> = {
  'AWS/Lambda': { Errors: ['FunctionName'], Throttles: ['FunctionName'], Duration: ['FunctionName'] },
  'AWS/SQS': {
    ApproximateNumberOfMessagesVisible: ['QueueName'],
    ApproximateAgeOfOldestMessage: ['QueueName'],
  },
  'AWS/ApiGateway': { '5xx': ['ApiId'], '4xx': ['ApiId'], Count: ['ApiId'] },
  'AWS/RDS': { ACUUtilization: ['DBClusterIdentifier'] },
};

const strataNames = new Set<string>(Object.values(Metric));

let s: Synth;
// A synth takes 10-20 s on a busy 2-core machine.
beforeAll(() => {
  s = synthStage('dev');
}, 180_000);
afterAll(() => s?.cleanup());

const stage = stageConfig('dev');

/** Dashboard metric arrays: [namespace, name, dimName, dimValue, ..., {options}?]. Tokens become "T". */
function dashboardMetrics(): unknown[][] {
  const [dash] = Object.values(s.template('observability').findResources('AWS::CloudWatch::Dashboard'));
  const body = dash!.Properties.DashboardBody;
  const text =
    typeof body === 'string'
      ? body
      : (body['Fn::Join'][1] as unknown[]).map((p) => (typeof p === 'string' ? p : 'T')).join('');
  const widgets = JSON.parse(text).widgets as Json[];
  return widgets.flatMap((w) => (w.properties?.metrics ?? []) as unknown[][]);
}

describe('observability stack', () => {
  it('alarms only on metrics that exist, with the dimensions they are published with', () => {
    const alarms = s.template('observability').findResources('AWS::CloudWatch::Alarm');
    expect(Object.keys(alarms).length).toBeGreaterThan(0);
    for (const [id, a] of Object.entries(alarms)) {
      const p = a.Properties;
      const dims = (p.Dimensions as { Name: string; Value: unknown }[]).map((d) => d.Name).sort();
      if (String(p.Namespace).startsWith('AWS/')) {
        const expected = AWS_METRICS[p.Namespace]?.[p.MetricName];
        expect(expected, `${id}: ${p.Namespace} ${p.MetricName} is not a known AWS metric`).toBeDefined();
        expect(dims, id).toEqual([...expected!].sort());
        for (const d of p.Dimensions) expect(d.Value, `${id} ${d.Name}`).toBeTruthy();
      } else {
        expect(p.Namespace, id).toBe(metricsNamespace(stage.prefix));
        expect(strataNames.has(p.MetricName), `${id}: ${p.MetricName} is not in core/metrics.ts`).toBe(true);
        expect(p.Dimensions, id).toEqual([{ Name: 'service', Value: METRICS_SERVICE }]);
      }
    }
  });

  it('alarms on the index lag and on Redis failures with thresholds from the stage', () => {
    const alarms = Object.values(s.template('observability').findResources('AWS::CloudWatch::Alarm'));
    const lag = alarms.filter((a) => a.Properties.MetricName === Metric.IndexLagMs);
    expect(lag).toHaveLength(1);
    expect(lag[0]!.Properties.Threshold).toBe(stage.alarms.maxIngestAge.toMilliseconds());
    expect(lag[0]!.Properties.Statistic).toBe('Maximum');
    expect(alarms.filter((a) => a.Properties.MetricName === Metric.RedisFailures)).toHaveLength(1);
    // dev runs Aurora: the capacity-ceiling alarm exists and names its cluster.
    const acu = alarms.filter((a) => a.Properties.MetricName === 'ACUUtilization');
    expect(acu).toHaveLength(1);
    expect(acu[0]!.Properties.Namespace).toBe('AWS/RDS');
  });

  it('graphs only metrics that exist, with the dimensions they are published with', () => {
    const metrics = dashboardMetrics();
    expect(metrics.length).toBeGreaterThan(0);
    for (const m of metrics) {
      const [ns, name, ...rest] = m as [string, string, ...unknown[]];
      const dimNames = rest.filter((x, i) => typeof x === 'string' && i % 2 === 0) as string[];
      if (ns.startsWith('AWS/')) {
        const expected = AWS_METRICS[ns]?.[name];
        expect(expected, `${ns} ${name}`).toBeDefined();
        expect(dimNames.sort(), `${ns} ${name}`).toEqual([...expected!].sort());
      } else {
        expect(ns).toBe(metricsNamespace(stage.prefix));
        expect(strataNames.has(name), `${name} is not in core/metrics.ts`).toBe(true);
        expect(rest.slice(0, 2)).toEqual(['service', METRICS_SERVICE]);
        expect(dimNames).toEqual(['service']);
      }
    }
  });

  it('gives every deployed function the namespace the alarms read and the service it emits', () => {
    for (const stack of ['api', 'workers', 'database'] as const) {
      const fns = s.template(stack).findResources('AWS::Lambda::Function');
      for (const [id, f] of Object.entries(fns)) {
        const env = f.Properties.Environment?.Variables ?? {};
        // CDK's own helper functions (bucket notifications, custom resources) are not Strata's.
        if (!String(f.Properties.Description ?? '').startsWith('Strata ')) continue;
        expect(env.POWERTOOLS_METRICS_NAMESPACE, `${stack}/${id}`).toBe(metricsNamespace(stage.prefix));
        // The service the code logs and dimensions its metrics with, not a per-function name it ignores.
        expect(env.POWERTOOLS_SERVICE_NAME, `${stack}/${id}`).toBe(METRICS_SERVICE);
      }
    }
  });
});

describe('the emitters', () => {
  it('name every metric through core/metrics.ts (no string literal that could drift)', () => {
    const files = filesUnder(join(REPO_ROOT, 'functions'), '.ts');
    let calls = 0;
    for (const f of files) {
      const src = readFileSync(f, 'utf8');
      for (const m of src.matchAll(/\.addMetric\(\s*([^,]+),/g)) {
        calls++;
        expect(
          m[1],
          `${relative(REPO_ROOT, f)}: addMetric(${m[1]}, ...) — name it in functions/core/metrics.ts (Metric) and pass the constant`,
        ).toMatch(/^(Metric\.[A-Za-z]+|reconcileCountMetric\(\w+\))$/);
      }
    }
    expect(calls).toBeGreaterThanOrEqual(Object.keys(Metric).length);
  });

  it('print EMF with the namespace, names and the one dimension the alarms use', async () => {
    // What a deployed function sees; the local stack and tests leave it unset (DEFAULT_METRICS_NAMESPACE).
    const namespace = metricsNamespace(stage.prefix);
    expect(namespace).not.toBe(DEFAULT_METRICS_NAMESPACE);
    vi.stubEnv('POWERTOOLS_METRICS_NAMESPACE', namespace);
    vi.stubEnv('POWERTOOLS_METRICS_DISABLED', 'false');
    // Not dev mode: Powertools then writes EMF to process.stdout (dev mode uses the global console).
    vi.stubEnv('POWERTOOLS_DEV', 'false');
    vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'SILENT');
    vi.stubEnv('STRATA_LOG_LEVEL', 'SILENT');
    const lines: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation(((
      chunk: unknown,
      ...rest: unknown[]
    ) => {
      const text = String(chunk);
      if (text.includes('"_aws"')) {
        lines.push(text);
        return true;
      }
      return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stdout.write);
    try {
      const { guardRedis } = await import('../../functions/handlers/http/deps.ts');
      const { createIndexer } = await import('../../functions/handlers/indexer.ts');
      // A Redis call that fails, through the guard every function uses: counts RedisFailures.
      const failing = { get: () => Promise.reject(new Error('connection refused')) } as unknown as Redis;
      const guard = guardRedis(failing);
      await guard.run('get', (r) => r.get('k'));
      // An indexer batch holding one s3:TestEvent: no S3 or database call, every indexer metric.
      const indexer = createIndexer(() => ({ redis: guard }) as never);
      const event = {
        Records: [{ messageId: 'm1', body: JSON.stringify({ Event: 's3:TestEvent' }) }],
      } as unknown as SQSEvent;
      await indexer(event);
      // An API route that fails unexpectedly (a bug): answered 500, counted as ApiErrors.
      const { httpApi } = await import('../../functions/handlers/http/api.ts');
      const api = httpApi(
        {
          'GET /boom': {
            scope: 'public',
            handler: () => Promise.reject(new TypeError('a bug')),
          },
        },
        { deps: () => ({}) as never },
      );
      const res = await api({
        routeKey: 'GET /boom',
        rawPath: '/boom',
        headers: {},
        requestContext: { requestId: 'r-obs', http: { method: 'GET', path: '/boom' } },
      } as never);
      expect(res.statusCode).toBe(500);
    } finally {
      spy.mockRestore();
      vi.unstubAllEnvs();
    }
    const emf = lines.flatMap((l) => l.split('\n')).filter((l) => l.includes('"_aws"'));
    expect(emf.length).toBeGreaterThan(0);
    const seen = new Set<string>();
    for (const line of emf) {
      const doc = JSON.parse(line);
      for (const d of doc._aws.CloudWatchMetrics) {
        expect(d.Namespace).toBe(namespace);
        expect(d.Dimensions).toEqual([['service']]);
        for (const m of d.Metrics) seen.add(m.Name);
      }
      expect(doc.service).toBe(METRICS_SERVICE);
    }
    // The two metrics the stack alarms on are among them, plus the indexer's batch counts.
    expect(seen).toContain(Metric.IndexLagMs);
    expect(seen).toContain(Metric.RedisFailures);
    expect(seen).toContain(Metric.IndexerFailures);
    expect(seen).toContain(Metric.ApiErrors);
    for (const name of seen) expect(strataNames.has(name), name).toBe(true);
  });
});

describe('runbook outputs', () => {
  it('name each DLQ (ARN for the redrive, URL to peek) and the alarm topic', () => {
    const outputs = s.template('observability').findOutputs('*');
    for (const q of ['Ingest', 'Reconcile']) {
      expect(outputs[`${q}DlqArn`], q).toBeDefined();
      expect(outputs[`${q}DlqUrl`], q).toBeDefined();
    }
    expect(outputs.AlarmTopicArn).toBeDefined();
  });
});
