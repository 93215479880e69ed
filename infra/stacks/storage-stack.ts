/**
 * Storage: the data bucket, its access-log bucket, and the read-only mount-client identity.
 */
import { CfnOutput, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import type { StageConfig } from '../config/stages.ts';
import { MountClientAccess } from '../constructs/mount-client-access.ts';
import { dataBucketName } from '../lib/bucket.ts';
import { acknowledge } from '../lib/nag.ts';

export interface StorageStackProps extends StackProps {
  stage: StageConfig;
}

export class StorageStack extends Stack {
  readonly bucket: s3.Bucket;
  readonly dataPrefix: string;
  readonly mountClient: MountClientAccess;

  constructor(scope: Construct, id: string, props: StorageStackProps) {
    super(scope, id, props);
    const { stage } = props;
    this.dataPrefix = stage.dataPrefix;

    const accessLogs = stage.bucket.accessLogs
      ? new s3.Bucket(this, 'AccessLogs', {
          blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
          enforceSSL: true,
          // S3 server access logging can only deliver to SSE-S3 buckets.
          encryption: s3.BucketEncryption.S3_MANAGED,
          objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
          // Access logs answer "who read what last quarter"; older ones are rarely worth their storage.
          lifecycleRules: [{ id: 'expire-access-logs', expiration: Duration.days(90) }],
          removalPolicy: stage.bucket.removalPolicy,
        })
      : undefined;
    if (accessLogs) {
      acknowledge(accessLogs, [
        'S1',
        'This is the access-log target bucket; logging it into itself would loop.',
      ]);
    }

    this.bucket = new s3.Bucket(this, 'Data', {
      bucketName: dataBucketName(stage),
      versioned: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      // SSE-S3: encrypted at rest with no KMS call per GET, so mount clients and presigned URLs need no
      // kms:Decrypt and ranged reads at high fan-out are not throttled by KMS request quotas.
      encryption: s3.BucketEncryption.S3_MANAGED,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      ...(accessLogs ? { serverAccessLogsBucket: accessLogs, serverAccessLogsPrefix: 'data-bucket/' } : {}),
      lifecycleRules: [
        // Abandoned multipart uploads are invisible and billed; a day covers any honest upload.
        { id: 'abort-incomplete-multipart', abortIncompleteMultipartUploadAfter: Duration.days(1) },
        {
          id: 'expire-noncurrent-versions',
          noncurrentVersionExpiration: Duration.days(stage.bucket.noncurrentVersionExpirationDays),
          expiredObjectDeleteMarker: true,
        },
      ],
      removalPolicy: stage.bucket.removalPolicy,
    });
    if (!accessLogs) acknowledge(this.bucket, ['S1', 'Access logging is off in this stage (LocalStack).']);

    this.mountClient = new MountClientAccess(this, 'MountClient', {
      // By name, like every other stack: the policy renders identically everywhere (lib/bucket.ts).
      bucket: s3.Bucket.fromBucketName(this, 'DataBucketByName', dataBucketName(stage)),
      dataPrefix: this.dataPrefix,
    });

    new CfnOutput(this, 'BucketName', { value: this.bucket.bucketName, description: 'Strata data bucket' });
    new CfnOutput(this, 'DataPrefix', { value: this.dataPrefix });
    new CfnOutput(this, 'MountClientRoleArn', { value: this.mountClient.role.roleArn });
    new CfnOutput(this, 'MountClientInstanceProfileArn', {
      value: this.mountClient.instanceProfile.instanceProfileArn,
    });
    new CfnOutput(this, 'MountClientPolicyArn', {
      value: this.mountClient.policy.managedPolicyArn,
      description: 'Attach to on-prem IAM users/roles that mount without --presign',
    });
  }
}
