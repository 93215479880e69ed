/**
 * Template assertions for the dev stage: every property issue 8 names, derived from
 * functions/handlers/routes.ts rather than restated, so a change there is checked here too.
 */
import { Match } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  httpRoutes,
  type LambdaName,
  lambdas,
  queueConsumers,
  schedules,
} from '../../functions/handlers/routes.ts';
import { stages } from '../../infra/config/stages.ts';
import { actionsOf, findFunction, resourceString, type Synth, statementsOf, synthStage } from './support.ts';

let s: Synth;
beforeAll(() => {
  s = synthStage('dev');
}, 180_000);
afterAll(() => s?.cleanup());

const dev = stages.dev;
const S3_WRITES = [
  's3:PutObject',
  's3:DeleteObject',
  's3:DeleteObjectVersion',
  's3:PutObjectAcl',
  's3:*',
  's3:Put*',
  's3:Delete*',
];

describe('storage', () => {
  it('blocks public access, encrypts, versions, and names the bucket deterministically', () => {
    s.template('storage').hasResourceProperties('AWS::S3::Bucket', {
      BucketName: Match.objectLike({ 'Fn::Join': Match.anyValue() }),
      VersioningConfiguration: { Status: 'Enabled' },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      LoggingConfiguration: Match.objectLike({ LogFilePrefix: 'data-bucket/' }),
    });
  });

  it('denies every request that is not over TLS', () => {
    s.template('storage').hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: Match.stringLikeRegexp('^Data') },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 's3:*',
            Principal: { AWS: '*' },
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
  });

  it('aborts incomplete multipart uploads after 1 day and expires noncurrent versions per stage', () => {
    s.template('storage').hasResourceProperties('AWS::S3::Bucket', {
      VersioningConfiguration: { Status: 'Enabled' },
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: 'Enabled' }),
          Match.objectLike({
            NoncurrentVersionExpiration: { NoncurrentDays: dev.bucket.noncurrentVersionExpirationDays },
            ExpiredObjectDeleteMarker: true,
          }),
        ]),
      },
    });
  });

  it('the mount-client role and managed policy are read-only on the data prefix, with an instance profile', () => {
    const t = s.template('storage');
    const managed = Object.values(t.findResources('AWS::IAM::ManagedPolicy'));
    expect(managed).toHaveLength(1);
    const statements = managed[0]!.Properties.PolicyDocument.Statement;
    expect(statements).toHaveLength(1);
    expect(statements[0].Effect).toBe('Allow');
    expect([...statements[0].Action].sort()).toEqual(['s3:GetObject', 's3:GetObjectVersion']);
    expect(resourceString(statements[0].Resource)).toMatch(/\/data\/\*"\]\]\}$/);
    // No inline policies that could widen the role.
    expect(Object.keys(t.findResources('AWS::IAM::Policy'))).toHaveLength(0);
    t.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [Match.objectLike({ Principal: { Service: 'ec2.amazonaws.com' } })],
      },
      ManagedPolicyArns: [{ Ref: Match.stringLikeRegexp('^MountClientReadPolicy') }],
    });
    t.resourceCountIs('AWS::IAM::InstanceProfile', 1);
  });

  it('outputs the bucket and the mount-client role, profile and policy ARNs', () => {
    const outputs = Object.keys(s.template('storage').findOutputs('*'));
    for (const o of [
      'BucketName',
      'MountClientRoleArn',
      'MountClientInstanceProfileArn',
      'MountClientPolicyArn',
    ])
      expect(outputs).toContain(o);
    expect(Object.keys(s.template('api').findOutputs('*'))).toContain('ApiUrl');
  });
});

describe('queues', () => {
  const queues = () => s.template('queues').findResources('AWS::SQS::Queue');

  it('every consumed queue has a DLQ with the redrive count from routes.ts', () => {
    for (const c of queueConsumers) {
      const title = c.queue[0]!.toUpperCase() + c.queue.slice(1);
      const [, q] = Object.entries(queues()).find(([id]) => id.startsWith(`${title}Queue`))!;
      expect(q.Properties.RedrivePolicy).toEqual({
        deadLetterTargetArn: { 'Fn::GetAtt': [expect.stringMatching(new RegExp(`^${title}Dlq`)), 'Arn'] },
        maxReceiveCount: c.maxReceiveCount,
      });
    }
  });

  it('visibility timeout is at least 6x the consumer timeout', () => {
    for (const c of queueConsumers) {
      const title = c.queue[0]!.toUpperCase() + c.queue.slice(1);
      const [, q] = Object.entries(queues()).find(([id]) => id.startsWith(`${title}Queue`))!;
      expect(q.Properties.VisibilityTimeout).toBeGreaterThanOrEqual(6 * lambdas[c.lambda].timeoutSeconds);
    }
  });

  it('all queues are SSE-encrypted and TLS-only', () => {
    for (const q of Object.values(queues())) expect(q.Properties.SqsManagedSseEnabled).toBe(true);
    const policies = Object.values(s.template('queues').findResources('AWS::SQS::QueuePolicy'));
    expect(policies.length).toBeGreaterThanOrEqual(Object.keys(queues()).length);
    for (const p of policies) {
      expect(p.Properties.PolicyDocument.Statement).toContainEqual(
        expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      );
    }
  });

  it('sends created, removed and lifecycle-expiration events under the data prefix only to the ingest queue', () => {
    const t = s.template('queues');
    const [n] = Object.values(t.findResources('Custom::S3BucketNotifications'));
    const configs = n!.Properties.NotificationConfiguration.QueueConfigurations as any[];
    expect(configs.map((c) => c.Events[0]).sort()).toEqual([
      's3:LifecycleExpiration:*',
      's3:ObjectCreated:*',
      's3:ObjectRemoved:*',
    ]);
    for (const c of configs) {
      expect(c.Filter).toEqual({ Key: { FilterRules: [{ Name: 'prefix', Value: dev.dataPrefix }] } });
      expect(c.QueueArn['Fn::GetAtt'][0]).toMatch(/^IngestQueue/);
    }
    // S3 may publish only for this bucket.
    t.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Principal: { Service: 's3.amazonaws.com' },
            Condition: { ArnLike: { 'aws:SourceArn': Match.anyValue() } },
          }),
        ]),
      },
    });
  });
});

describe('functions', () => {
  const templates = () => [s.template('api'), s.template('workers'), s.template('database')];

  it('deploys every Lambda of routes.ts exactly once with the shared defaults and its own limits', () => {
    for (const [name, spec] of Object.entries(lambdas)) {
      const found = templates().flatMap((t) => {
        try {
          return [findFunction(t, name)[1]];
        } catch {
          return [];
        }
      });
      expect(found, name).toHaveLength(1);
      expect(found[0]!.Properties).toMatchObject({
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        TracingConfig: { Mode: 'Active' },
        LoggingConfig: { LogFormat: 'JSON' },
        Timeout: spec.timeoutSeconds,
        MemorySize: spec.memoryMb,
        VpcConfig: expect.objectContaining({ SecurityGroupIds: expect.any(Array) }),
      });
      expect(found[0]!.Properties.Environment.Variables).toMatchObject({
        STRATA_BUCKET: expect.anything(),
        STRATA_DATA_PREFIX: dev.dataPrefix,
        DATABASE_SECRET_ARN: expect.anything(),
        DATABASE_HOST: expect.anything(),
      });
    }
  });

  it('log groups have the stage retention', () => {
    for (const t of templates())
      for (const lg of Object.values(t.findResources('AWS::Logs::LogGroup')))
        expect(lg.Properties.RetentionInDays).toBe(7);
  });

  it('consumers use ReportBatchItemFailures with the batch settings of routes.ts', () => {
    const t = s.template('workers');
    for (const c of queueConsumers) {
      const [fnId] = findFunction(t, c.lambda);
      t.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
        FunctionName: { Ref: fnId },
        BatchSize: c.batchSize,
        FunctionResponseTypes: ['ReportBatchItemFailures'],
        // AWS requires ≥ 1 s for batches over 10.
        MaximumBatchingWindowInSeconds:
          c.batchSize > 10 ? Math.max(1, c.maxBatchingWindowSeconds) : c.maxBatchingWindowSeconds,
      });
    }
  });

  it('schedules run at the rates of routes.ts', () => {
    const t = s.template('workers');
    for (const sch of schedules) {
      const [fnId] = findFunction(t, sch.lambda);
      const m = sch.everyMinutes;
      const rate = m % 60 === 0 ? `rate(${m / 60} hour${m === 60 ? '' : 's'})` : `rate(${m} minutes)`;
      t.hasResourceProperties('AWS::Events::Rule', {
        ScheduleExpression: rate,
        Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [fnId, 'Arn'] } })],
      });
    }
  });
});

describe('api', () => {
  it('has exactly the routes of routes.ts, each integrated with its Lambda', () => {
    const t = s.template('api');
    const routes = Object.values(t.findResources('AWS::ApiGatewayV2::Route'));
    expect(routes.map((r) => r.Properties.RouteKey).sort()).toEqual(httpRoutes.map((r) => r.routeKey).sort());
    const integrations = t.findResources('AWS::ApiGatewayV2::Integration');
    for (const r of httpRoutes) {
      const route = routes.find((x) => x.Properties.RouteKey === r.routeKey)!;
      const integrationId = route.Properties.Target['Fn::Join'][1][1].Ref as string;
      const [fnId] = findFunction(t, r.lambda);
      expect(integrations[integrationId]!.Properties.IntegrationUri).toEqual({ 'Fn::GetAtt': [fnId, 'Arn'] });
    }
  });

  it('throttles the stage and writes JSON access logs', () => {
    s.template('api').hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      DefaultRouteSettings: {
        ThrottlingRateLimit: dev.api.throttleRateLimit,
        ThrottlingBurstLimit: dev.api.throttleBurstLimit,
      },
      AccessLogSettings: {
        DestinationArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^AccessLogs'), 'Arn'] },
        Format: Match.stringLikeRegexp('"requestId":"\\$context.requestId"'),
      },
    });
  });
});

describe('least privilege', () => {
  const templateOf = (name: LambdaName) =>
    name === 'migrate'
      ? s.template('database')
      : httpRoutes.some((r) => r.lambda === name)
        ? s.template('api')
        : s.template('workers');

  it('wildcard resources are only X-Ray', () => {
    for (const name of Object.keys(lambdas) as LambdaName[]) {
      for (const st of statementsOf(templateOf(name), name).filter((x) => x.Resource === '*'))
        expect(
          actionsOf(st).every((a) => a.startsWith('xray:')),
          `${name}: ${actionsOf(st)}`,
        ).toBe(true);
    }
  });

  it('the indexer cannot write or delete objects; it may list the data prefix (HEAD of a gone key: 404, not 403)', () => {
    const s3Actions = statementsOf(s.template('workers'), 'indexer')
      .flatMap(actionsOf)
      .filter((a) => a.startsWith('s3:'));
    expect(s3Actions.sort()).toEqual(['s3:GetObject', 's3:GetObjectVersion', 's3:ListBucket']);
    for (const w of S3_WRITES) expect(s3Actions).not.toContain(w);
  });

  it('the uploads handler can only presign uploads, only on the data prefix', () => {
    const s3Statements = statementsOf(s.template('api'), 'uploads').filter((st) =>
      actionsOf(st).some((a) => a.startsWith('s3:')),
    );
    expect(s3Statements).toHaveLength(1);
    expect(actionsOf(s3Statements[0]!).sort()).toEqual([
      's3:AbortMultipartUpload',
      's3:ListMultipartUploadParts',
      's3:PutObject',
    ]);
    expect(resourceString(s3Statements[0]!.Resource)).toMatch(/"\/data\/\*"\]\]\}$/);
  });

  it('bucket listing is conditioned on the data prefix', () => {
    for (const name of ['reconcilePlanner', 'reconcileWorker', 'reconcileApi', 'indexer'] as LambdaName[]) {
      const list = statementsOf(templateOf(name), name).filter((st) =>
        actionsOf(st).includes('s3:ListBucket'),
      );
      expect(list, name).toHaveLength(1);
      expect(list[0]!.Condition).toEqual({ StringLike: { 's3:prefix': [`${dev.dataPrefix}*`] } });
    }
  });

  it('only the functions that send to a queue may send', () => {
    for (const name of Object.keys(lambdas) as LambdaName[]) {
      const sends = statementsOf(templateOf(name), name).some((st) =>
        actionsOf(st).includes('sqs:SendMessage'),
      );
      expect(sends, name).toBe(['reconcileApi', 'reconcilePlanner'].includes(name));
    }
  });
});

describe('database', () => {
  it('runs Aurora PostgreSQL 17 Serverless v2 in isolated subnets behind a TLS-only RDS Proxy', () => {
    const t = s.template('database');
    t.hasResourceProperties('AWS::RDS::DBCluster', {
      Engine: 'aurora-postgresql',
      EngineVersion: Match.stringLikeRegexp('^17\\.'),
      StorageEncrypted: true,
      ServerlessV2ScalingConfiguration: { MinCapacity: 0.5, MaxCapacity: 4 },
      DBSubnetGroupName: Match.anyValue(),
    });
    t.hasResourceProperties('AWS::RDS::DBInstance', { DBInstanceClass: 'db.serverless' });
    t.hasResourceProperties('AWS::RDS::DBProxy', { RequireTLS: true, EngineFamily: 'POSTGRESQL' });
    t.hasResourceProperties('AWS::RDS::DBSubnetGroup', {
      SubnetIds: Match.arrayWith([{ Ref: Match.stringLikeRegexp('^VpcdatabaseSubnet') }]),
    });
    // Cluster credentials + the bootstrap admin token.
    t.resourceCountIs('AWS::SecretsManager::Secret', 2);
    t.resourceCountIs('AWS::EC2::VPC', 1);
    t.resourceCountIs('AWS::EC2::FlowLog', 1);
  });

  it('applies migrations with a custom resource after the proxy exists', () => {
    const t = s.template('database');
    const [id, cr] = Object.entries(t.findResources('Custom::StrataMigrations'))[0]!;
    const [fnId] = findFunction(t, 'migrate');
    expect(cr.Properties.ServiceToken).toEqual({ 'Fn::GetAtt': [fnId, 'Arn'] });
    expect(cr.Properties.checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(cr.DependsOn, id).toEqual(expect.arrayContaining([expect.stringMatching(/^ClusterProxy/)]));
  });
});

describe('observability', () => {
  it('alarms on DLQs, oldest message age, function errors and throttles, and API 5xx', () => {
    const alarms = Object.values(s.template('observability').findResources('AWS::CloudWatch::Alarm'));
    const by = (metric: string) => alarms.filter((a) => a.Properties.MetricName === metric);
    const queues = new Set(queueConsumers.map((c) => c.queue)).size;
    expect(by('ApproximateNumberOfMessagesVisible')).toHaveLength(queues);
    expect(by('ApproximateAgeOfOldestMessage')).toHaveLength(queues);
    expect(by('Errors')).toHaveLength(Object.keys(lambdas).length);
    expect(by('Throttles')).toHaveLength(Object.keys(lambdas).length);
    expect(by('5xx')).toHaveLength(1);
    for (const a of alarms) expect(a.Properties.AlarmActions).toHaveLength(1);
    s.template('observability').resourceCountIs('AWS::CloudWatch::Dashboard', 1);
  });
});
