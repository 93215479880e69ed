/**
 * Synthesizes Strata stages for assertions, the way `cdk synth` does (cdk.json context, offline, no
 * lookups) but with bundling skipped: esbuild runs in exactly one test (bundling.test.ts).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { type StageName, stageConfig } from '../../infra/config/stages.ts';
import { REPO_ROOT } from '../../infra/constructs/strata-function.ts';
import { buildStrata, type StrataStacks } from '../../infra/lib/strata-app.ts';

export const cdkContext: Record<string, unknown> = JSON.parse(
  readFileSync(join(REPO_ROOT, 'cdk.json'), 'utf8'),
).context;

export interface Synth {
  app: App;
  stacks: StrataStacks;
  template(stack: keyof StrataStacks): Template;
  cleanup(): void;
}

export function synthStage(stage: StageName, context: Record<string, unknown> = {}): Synth {
  const outdir = mkdtempSync(join(tmpdir(), `strata-cdk-${stage}-`));
  const app = new App({ outdir, context: { ...cdkContext, 'aws:cdk:bundling-stacks': [], ...context } });
  const stacks = buildStrata(app, stageConfig(stage));
  app.synth();
  const cache = new Map<string, Template>();
  return {
    app,
    stacks,
    template(name) {
      let t = cache.get(name);
      if (!t) {
        t = Template.fromStack(stacks[name]);
        cache.set(name, t);
      }
      return t;
    },
    cleanup: () => rmSync(outdir, { recursive: true, force: true }),
  };
}

type Json = Record<string, any>;

export interface PolicyStatement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Json;
}

export const actionsOf = (s: PolicyStatement): string[] => (Array.isArray(s.Action) ? s.Action : [s.Action]);

/** The Lambda resource whose description names this routes.ts Lambda. */
export function findFunction(t: Template, lambda: string): [string, Json] {
  const fns = Object.entries(t.findResources('AWS::Lambda::Function')).filter(([, r]) =>
    String(r.Properties.Description ?? '').startsWith(`Strata ${lambda}:`),
  );
  if (fns.length !== 1) throw new Error(`expected one function for ${lambda}, found ${fns.length}`);
  return fns[0]!;
}

/** Every statement of every inline/managed policy attached to the function's role in this template. */
export function statementsOf(t: Template, lambda: string): PolicyStatement[] {
  const [, fn] = findFunction(t, lambda);
  const roleId = fn.Properties.Role['Fn::GetAtt'][0] as string;
  const policies = Object.values(t.findResources('AWS::IAM::Policy')).filter((p) =>
    (p.Properties.Roles as Json[]).some((r) => r.Ref === roleId),
  );
  return policies.flatMap((p) => p.Properties.PolicyDocument.Statement as PolicyStatement[]);
}

/** A resource rendered as a flat string (tokens included), for prefix checks. */
export function resourceString(resource: unknown): string {
  return JSON.stringify(resource);
}
