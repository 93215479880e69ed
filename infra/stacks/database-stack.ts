/**
 * Database: the VPC, Aurora PostgreSQL 17 Serverless v2 in isolated subnets, RDS Proxy, the generated
 * credentials in Secrets Manager (rotated), and the custom resource that applies migrations at
 * deploy. In the LocalStack stage none of the network exists: functions get the compose URL.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CfnOutput, CustomResource, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { lambdas } from '../../functions/handlers/routes.ts';
import type { StageConfig } from '../config/stages.ts';
import { type DatabaseAccess, REPO_ROOT, StrataFunction } from '../constructs/strata-function.ts';
import { importDataBucket } from '../lib/bucket.ts';
import { acknowledge } from '../lib/nag.ts';

export interface DatabaseStackProps extends StackProps {
  stage: StageConfig;
}

export interface FunctionNetwork {
  vpc: ec2.IVpc;
  securityGroup: ec2.ISecurityGroup;
}

const MIGRATIONS = 'functions/migrations';

/** Changes whenever a migration is added or edited, so CloudFormation re-runs the custom resource. */
export function migrationsChecksum(): string {
  const dir = join(REPO_ROOT, MIGRATIONS);
  const hash = createHash('sha256');
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort()) {
    hash
      .update(file)
      .update('\0')
      .update(readFileSync(join(dir, file)))
      .update('\0');
  }
  return hash.digest('hex');
}

export class DatabaseStack extends Stack {
  readonly access: DatabaseAccess;
  readonly network?: FunctionNetwork;
  readonly cluster?: rds.DatabaseCluster;
  readonly migrate: StrataFunction;
  readonly adminTokenSecret: secretsmanager.Secret;

  constructor(scope: Construct, id: string, props: DatabaseStackProps) {
    super(scope, id, props);
    const { stage } = props;
    const db = stage.database;
    const dependencies: Construct[] = [];

    if (db.kind === 'aurora') {
      if (stage.network.kind !== 'vpc')
        throw new Error(`stage ${stage.stage}: an Aurora database needs network.kind "vpc"`);
      const flowLogs = new logs.LogGroup(this, 'FlowLogs', {
        retention: logs.RetentionDays[stage.logRetention],
        removalPolicy: RemovalPolicy.DESTROY,
      });
      const vpc = new ec2.Vpc(this, 'Vpc', {
        maxAzs: stage.network.maxAzs,
        natGateways: stage.network.natGateways,
        subnetConfiguration: [
          { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
          // Lambdas: egress through NAT to Upstash, SQS and Secrets Manager.
          { name: 'functions', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
          // The database and proxy: no route out at all.
          { name: 'database', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
        ],
        // S3 through a free gateway endpoint: reconcile listings and HEADs never pay NAT data charges.
        gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
        flowLogs: {
          rejected: {
            destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs),
            trafficType: ec2.FlowLogTrafficType.REJECT,
          },
        },
      });
      const clients = new ec2.SecurityGroup(this, 'DatabaseClients', {
        vpc,
        description: 'Strata functions: may connect to the RDS Proxy',
        allowAllOutbound: true,
      });
      const proxySg = new ec2.SecurityGroup(this, 'ProxySecurityGroup', {
        vpc,
        description: 'Strata RDS Proxy',
        allowAllOutbound: false,
      });
      proxySg.addIngressRule(clients, ec2.Port.tcp(5432), 'Strata functions');

      const cluster = new rds.DatabaseCluster(this, 'Cluster', {
        engine: rds.DatabaseClusterEngine.auroraPostgres({
          version: rds.AuroraPostgresEngineVersion.VER_17_4,
        }),
        writer: rds.ClusterInstance.serverlessV2('Writer'),
        readers: Array.from({ length: db.readers }, (_, i) =>
          rds.ClusterInstance.serverlessV2(`Reader${i + 1}`, { scaleWithWriter: true }),
        ),
        serverlessV2MinCapacity: db.minCapacity,
        serverlessV2MaxCapacity: db.maxCapacity,
        vpc,
        vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
        credentials: rds.Credentials.fromGeneratedSecret('strata'),
        defaultDatabaseName: 'strata',
        storageEncrypted: true,
        iamAuthentication: true,
        deletionProtection: db.deletionProtection,
        backup: { retention: Duration.days(db.backupRetentionDays) },
        removalPolicy: db.deletionProtection ? RemovalPolicy.SNAPSHOT : RemovalPolicy.DESTROY,
      });
      const secret = cluster.secret!;
      const proxy = cluster.addProxy('Proxy', {
        secrets: [secret],
        vpc,
        vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
        securityGroups: [proxySg],
        // The proxy's certificate comes from ACM (publicly trusted), so clients verify it with no bundle.
        requireTLS: true,
      });
      cluster.connections.allowDefaultPortFrom(proxySg, 'RDS Proxy');

      this.cluster = cluster;
      this.network = { vpc, securityGroup: clients };
      this.access = { kind: 'secret', secret, host: proxy.endpoint };
      dependencies.push(proxy, cluster);

      acknowledge(
        cluster,
        [
          'RDS11',
          'RDS Proxy always listens on the engine default port; the cluster sits behind it in isolated subnets.',
        ],
        [
          'SMG4',
          'Functions resolve the password once per execution environment, so automatic rotation would break new connections of warm environments; rotate with the procedure in docs/deploy.md.',
        ],
        ...(db.deletionProtection
          ? []
          : ([['RDS10', `Stage ${stage.stage} is disposable; prod enables deletion protection.`]] as Array<
              [string, string]
            >)),
      );
      new CfnOutput(this, 'ProxyEndpoint', { value: proxy.endpoint });
      new CfnOutput(this, 'DatabaseSecretArn', { value: secret.secretArn });
    } else {
      this.access = { kind: 'url', url: db.url };
    }

    this.migrate = new StrataFunction(this, 'Migrate', {
      name: 'migrate',
      spec: lambdas.migrate,
      stage,
      storage: { bucket: importDataBucket(this, stage), dataPrefix: stage.dataPrefix },
      network: this.network,
      copyIntoBundle: [{ from: MIGRATIONS, to: 'migrations' }],
    }).bindDatabase(this.access);

    // Filled by the migrate function with the first admin token on a fresh database.
    this.adminTokenSecret = new secretsmanager.Secret(this, 'AdminToken', {
      description: `Strata ${stage.stage}: bootstrap admin API token (create named tokens, then revoke it)`,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.adminTokenSecret.grantWrite(this.migrate);
    this.migrate.addEnvironment('STRATA_ADMIN_TOKEN_SECRET_ARN', this.adminTokenSecret.secretArn);
    acknowledge(this.adminTokenSecret, [
      'SMG4',
      'A one-time bootstrap token; the operator revokes it after creating named tokens (docs/deploy.md).',
    ]);
    new CfnOutput(this, 'AdminTokenSecretArn', { value: this.adminTokenSecret.secretArn });

    const migrations = new CustomResource(this, 'Migrations', {
      serviceToken: this.migrate.functionArn,
      resourceType: 'Custom::StrataMigrations',
      properties: { checksum: migrationsChecksum() },
    });
    for (const d of dependencies) migrations.node.addDependency(d);
  }
}
