/**
 * cdk-nag acknowledgements, each with the reason it is safe. Findings are matched by exact ID
 * (cdk-nag 3 has no prefix matching), so IAM5 wildcard findings are acknowledged one resource
 * pattern at a time — a new wildcard anywhere still fails the nag test.
 */
import { Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

export function acknowledge(scope: IConstruct, ...rules: Array<[id: string, reason: string]>): void {
  Validations.of(scope).acknowledge(...rules.map(([id, reason]) => ({ id: `AwsSolutions-${id}`, reason })));
}
