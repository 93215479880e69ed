/**
 * The data bucket has a deterministic name, and every stack other than storage refers to it by that
 * name instead of through CloudFormation exports. Two reasons: the notification wiring (queue policy
 * naming the bucket, bucket naming the queue) cannot form a cross-stack cycle, and the ARNs in IAM
 * policies render the same before and after synthesis, so cdk-nag acknowledgements match exactly.
 */
import { Aws, Stack, Token } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import type { StageConfig } from '../config/stages.ts';

/** `strata-<stage>-<account>-<region>`: unique per account and region, ≤ 63 characters. */
export function dataBucketName(stage: StageConfig): string {
  return stage.bucket.name ?? `strata-${stage.stage}-${Aws.ACCOUNT_ID}-${Aws.REGION}`;
}

export function importDataBucket(scope: Construct, stage: StageConfig): s3.IBucket {
  return s3.Bucket.fromBucketName(scope, 'DataBucket', dataBucketName(stage));
}

/** How cdk-nag prints a (possibly tokenized) string in a finding ID, e.g. `arn:<AWS::Partition>:s3:::x/*`. */
export function nagString(scope: Construct, value: string): string {
  if (!Token.isUnresolved(value)) return value;
  const render = (v: unknown): string => {
    if (typeof v === 'string') return v;
    if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if ('Ref' in o) return `<${o.Ref as string}>`;
      if ('Fn::GetAtt' in o) return `<${(o['Fn::GetAtt'] as string[]).join('.')}>`;
      if ('Fn::Join' in o) {
        const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
        return parts.map(render).join(sep);
      }
    }
    throw new Error(`cannot render ${JSON.stringify(v)} as a cdk-nag finding`);
  };
  return render(Stack.of(scope).resolve(value));
}
