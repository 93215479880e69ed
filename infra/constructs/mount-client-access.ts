/**
 * Read-only access for mount clients: a managed policy (attach it to any role or on-prem user), an
 * EC2 role carrying it, and the instance profile to launch nodes with.
 *
 * Only GetObject/GetObjectVersion on the data prefix. No s3:ListBucket: mount clients never list S3 —
 * every listing and stat comes from the index through the API — and without ListBucket a client
 * cannot enumerate the bucket even if it leaks its credentials (S3 answers 403 instead of 404 for
 * a key that does not exist, which the object client never asks for because it reads only resolved
 * versions).
 */
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { nagString } from '../lib/bucket.ts';
import { acknowledge } from '../lib/nag.ts';

export interface MountClientAccessProps {
  bucket: s3.IBucket;
  dataPrefix: string;
}

export class MountClientAccess extends Construct {
  readonly policy: iam.ManagedPolicy;
  readonly role: iam.Role;
  readonly instanceProfile: iam.InstanceProfile;

  constructor(scope: Construct, id: string, props: MountClientAccessProps) {
    super(scope, id);
    this.policy = new iam.ManagedPolicy(this, 'ReadPolicy', {
      description: 'Strata mount clients: read objects under the data prefix (GetObject only)',
      statements: [
        new iam.PolicyStatement({
          sid: 'ReadDataObjects',
          actions: ['s3:GetObject', 's3:GetObjectVersion'],
          resources: [props.bucket.arnForObjects(`${props.dataPrefix}*`)],
        }),
      ],
    });
    this.role = new iam.Role(this, 'Role', {
      description: 'Strata mount clients on EC2 (instance profile)',
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      managedPolicies: [this.policy],
    });
    this.instanceProfile = new iam.InstanceProfile(this, 'InstanceProfile', { role: this.role });
    acknowledge(this.policy, [
      `IAM5[Resource::${nagString(this, props.bucket.arnForObjects(`${props.dataPrefix}*`))}]`,
      'Every object under the data prefix is mount-readable by design; the prefix is the scope.',
    ]);
  }
}
