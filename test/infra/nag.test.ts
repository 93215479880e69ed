/**
 * cdk-nag AwsSolutions on every stage, after synthesis (as `cdk synth` runs it): zero unacknowledged
 * findings, and every acknowledgement carries a reason.
 */
import { Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { describe, expect, it } from 'vitest';
import type { StageName } from '../../infra/config/stages.ts';
import { synthStage } from './support.ts';

function acknowledgements(root: IConstruct): Array<{ path: string; id: string; reason: unknown }> {
  const out: Array<{ path: string; id: string; reason: unknown }> = [];
  for (const c of root.node.findAll()) {
    for (const m of c.node.metadata) {
      if (m.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [id, value] of Object.entries(m.data as Record<string, unknown>)) {
        const reason = typeof value === 'string' ? value : (value as { reason?: unknown })?.reason;
        out.push({ path: c.node.path, id, reason });
      }
    }
  }
  return out;
}

describe.each<StageName>(['dev', 'prod', 'localstack'])('cdk-nag AwsSolutions: %s', (stage) => {
  it('has zero unacknowledged findings and a reason for every acknowledgement', () => {
    const s = synthStage(stage);
    try {
      const report = new AwsSolutionsChecks().validateScope(s.app);
      const findings = report.violations.flatMap((v) =>
        v.violatingResources.map((r) => `${v.ruleName} ${r.constructPath}: ${v.description}`),
      );
      expect(findings).toEqual([]);
      // CDK itself acknowledges a few CloudFormation-Validate warnings; ours are the AwsSolutions ones.
      const acks = acknowledgements(s.app).filter((a) => /^(Annotation::)?AwsSolutions-/i.test(a.id));
      expect(acks.length).toBeGreaterThan(0);
      for (const a of acks) {
        expect(typeof a.reason === 'string' && a.reason.length > 20, `${a.path} ${a.id}`).toBe(true);
      }
    } finally {
      s.cleanup();
    }
  }, 180_000);
});
