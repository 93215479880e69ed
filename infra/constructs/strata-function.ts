/**
 * StrataFunction: the Lambda defaults of the whole app, held once (runtime, architecture, bundling,
 * tracing, JSON logs with retention), plus `bind*` helpers that set an environment variable and the
 * matching least-privilege grant in one call — so an env var never exists without its permission
 * and a permission never exists without the code path that reads it (functions/config.ts).
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import type { LambdaName, LambdaSpec, QueueName } from '../../functions/handlers/routes.ts';
import type { StageConfig } from '../config/stages.ts';
import { nagString } from '../lib/bucket.ts';
import { acknowledge } from '../lib/nag.ts';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** How a function reaches PostgreSQL: a Secrets Manager secret + RDS Proxy host, or a plain URL. */
export type DatabaseAccess =
  | { kind: 'secret'; secret: secretsmanager.ISecret; host: string }
  | { kind: 'url'; url: string };

export type UpstashAccess =
  | { kind: 'secret'; secret: secretsmanager.ISecret }
  | { kind: 'plain'; url: string; token: string };

export interface StrataFunctionProps {
  name: LambdaName;
  spec: LambdaSpec;
  stage: StageConfig;
  storage: { bucket: s3.IBucket; dataPrefix: string };
  /** Private subnets + the database-client security group; absent where there is no VPC (LocalStack). */
  network?: { vpc: ec2.IVpc; securityGroup: ec2.ISecurityGroup };
  /** Extra files copied next to the bundle, relative to the repo root (e.g. SQL migrations). */
  copyIntoBundle?: { from: string; to: string }[];
}

/** A handler module listed in routes.ts does not exist yet and bundling was requested. */
export class MissingHandlerError extends Error {
  override name = 'MissingHandlerError';
}

const queueEnv: Record<QueueName, string> = {
  ingest: 'STRATA_INGEST_QUEUE_URL',
  reconcile: 'STRATA_RECONCILE_QUEUE_URL',
};

export class StrataFunction extends NodejsFunction {
  readonly lambdaName: LambdaName;
  private readonly bucket: s3.IBucket;
  private readonly dataPrefix: string;
  private prefixAcknowledged = false;

  constructor(scope: Construct, id: string, props: StrataFunctionProps) {
    const entry = join(REPO_ROOT, props.spec.entry);
    const entryExists = existsSync(entry);
    const bundling = Stack.of(scope).bundlingRequired;
    if (!entryExists && bundling) {
      throw new MissingHandlerError(
        `handler module ${props.spec.entry} (Lambda "${props.name}" in functions/handlers/routes.ts) does not exist; ` +
          'write it, or synthesize without bundling: npx cdk synth -c aws:cdk:bundling-stacks=[]',
      );
    }
    const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
      retention: logs.RetentionDays[props.stage.logRetention],
      removalPolicy: props.stage.bucket.removalPolicy,
    });
    super(scope, id, {
      description: `Strata ${props.name}: ${props.spec.description}`,
      // Node 22 everywhere (design.md §4); arm64 is ~20% cheaper per GB-s at equal speed for this code.
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      timeout: Duration.seconds(props.spec.timeoutSeconds),
      memorySize: props.spec.memoryMb,
      tracing: lambda.Tracing.ACTIVE,
      loggingFormat: lambda.LoggingFormat.JSON,
      logGroup,
      // When bundling is skipped (assertion tests), a handler still being written must not break the
      // synth; such a template is never deployable because its code asset is not built either.
      ...(entryExists
        ? {
            entry,
            handler: 'handler',
            projectRoot: REPO_ROOT,
            depsLockFilePath: join(REPO_ROOT, 'package-lock.json'),
          }
        : {
            code: lambda.Code.fromInline('// handler not written yet; bundling skipped'),
            handler: 'index.handler',
          }),
      bundling: {
        format: OutputFormat.ESM,
        target: 'node22',
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        mainFields: ['module', 'main'],
        // pg and a few SDK internals are CommonJS and call require(); ESM bundles need it defined.
        banner:
          "import { createRequire as __strataCreateRequire } from 'node:module'; const require = __strataCreateRequire(import.meta.url);",
        // Bundle the SDK we test against instead of the runtime's copy: the S3 checksum settings we
        // rely on (design.md §4) need a recent SDK, and the runtime's version moves under us.
        bundleAwsSDK: true,
        externalModules: ['pg-native'],
        // Resolves DATABASE_SECRET_ARN / UPSTASH_SECRET_ARN into plain settings at cold start, before
        // the handler reads its config (functions/adapters/aws/secrets.ts).
        inject: [join(REPO_ROOT, 'infra/lambda/bootstrap-secrets.ts')],
        commandHooks: {
          beforeBundling: () => [],
          beforeInstall: () => [],
          afterBundling: (inputDir: string, outputDir: string) =>
            (props.copyIntoBundle ?? []).map(
              (c) => `cp -R "${join(inputDir, c.from)}" "${join(outputDir, c.to)}"`,
            ),
        },
      },
      environment: {
        NODE_OPTIONS: '--enable-source-maps',
        POWERTOOLS_SERVICE_NAME: `strata-${props.name}`,
        POWERTOOLS_METRICS_NAMESPACE: 'Strata',
        STRATA_LOG_LEVEL: 'INFO',
        STRATA_BUCKET: props.storage.bucket.bucketName,
        STRATA_DATA_PREFIX: props.storage.dataPrefix,
        ...(props.stage.endpoints
          ? { STRATA_S3_ENDPOINT: props.stage.endpoints.s3, STRATA_SQS_ENDPOINT: props.stage.endpoints.sqs }
          : {}),
      },
      ...(props.network
        ? {
            vpc: props.network.vpc,
            vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
            securityGroups: [props.network.securityGroup],
          }
        : {}),
    });
    this.lambdaName = props.name;
    this.bucket = props.storage.bucket;
    this.dataPrefix = props.storage.dataPrefix;
    acknowledge(
      this,
      ['L1', 'Node.js 22 LTS is pinned on purpose (design.md §4): the code is built and tested on it.'],
      [
        'IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        "AWS-managed baseline: writes to this function's own log group only.",
      ],
      [
        'IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]',
        'AWS-managed baseline for ENI management of VPC functions; its EC2 actions support no resource scoping.',
      ],
      [
        'IAM5[Resource::*]',
        'X-Ray PutTraceSegments/PutTelemetryRecords support no resource scoping (asserted in test/infra).',
      ],
    );
  }

  /** The object-prefix wildcard is the scope itself: every bind below grants on `<bucket>/<prefix>*` only. */
  private acknowledgePrefixWildcard(): void {
    if (this.prefixAcknowledged) return;
    this.prefixAcknowledged = true;
    acknowledge(this, [
      `IAM5[Resource::${nagString(this, this.bucket.arnForObjects(`${this.dataPrefix}*`))}]`,
      'Access is scoped to the data prefix; objects under it are addressed by path, so the prefix is the unit of least privilege.',
    ]);
  }

  /** Objects under the data prefix, as S3 resource ARNs see them. */
  private get dataObjects(): string {
    this.acknowledgePrefixWildcard();
    return this.bucket.arnForObjects(`${this.dataPrefix}*`);
  }

  /** GetObject (HEAD, ranged and presigned GETs) on the data prefix only. */
  bindBucketRead(): this {
    this.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject', 's3:GetObjectVersion'],
        resources: [this.dataObjects],
      }),
    );
    return this;
  }

  /**
   * What a presigned upload URL needs: PutObject covers single PUT and the multipart create/part/complete
   * calls; abort and part listing let a client resume or cancel. Nothing outside the data prefix, no reads.
   */
  bindPresignUpload(): this {
    this.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
        resources: [this.dataObjects],
      }),
    );
    return this;
  }

  /** ListBucket, but only for listings whose prefix lies inside the data prefix. */
  bindBucketList(): this {
    this.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [this.bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${this.dataPrefix}*`] } },
      }),
    );
    return this;
  }

  /** DeleteObject on the data prefix (a delete marker: versioning keeps the bytes for the undo window). */
  bindBucketDelete(): this {
    this.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['s3:DeleteObject'], resources: [this.dataObjects] }),
    );
    return this;
  }

  /** Finds and aborts stale multipart uploads under the data prefix. */
  bindAbortUploads(): this {
    this.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucketMultipartUploads'],
        resources: [this.bucket.bucketArn],
      }),
    );
    this.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['s3:AbortMultipartUpload'], resources: [this.dataObjects] }),
    );
    return this;
  }

  bindQueueSend(name: QueueName, queue: sqs.IQueue): this {
    this.addEnvironment(queueEnv[name], queue.queueUrl);
    queue.grantSendMessages(this);
    return this;
  }

  bindDatabase(db: DatabaseAccess): this {
    if (db.kind === 'url') {
      this.addEnvironment('DATABASE_URL', db.url);
    } else {
      this.addEnvironment('DATABASE_SECRET_ARN', db.secret.secretArn);
      // The secret names the cluster writer; functions connect through the proxy instead.
      this.addEnvironment('DATABASE_HOST', db.host);
      db.secret.grantRead(this);
    }
    return this;
  }

  bindUpstash(upstash: UpstashAccess): this {
    if (upstash.kind === 'plain') {
      this.addEnvironment('UPSTASH_REDIS_REST_URL', upstash.url);
      this.addEnvironment('UPSTASH_REDIS_REST_TOKEN', upstash.token);
    } else {
      this.addEnvironment('UPSTASH_SECRET_ARN', upstash.secret.secretArn);
      upstash.secret.grantRead(this);
    }
    return this;
  }
}
