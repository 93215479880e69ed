import { readFileSync } from 'node:fs';
import { App } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { stageConfig } from './config/stages.ts';
import { buildStrata } from './lib/strata-app.ts';

const t0 = Date.now();
const ctx = JSON.parse(readFileSync('cdk.json', 'utf8')).context;
const app = new App({ context: { ...ctx, 'aws:cdk:bundling-stacks': [] }, outdir: '/tmp/strata-cdkout' });
buildStrata(app, stageConfig(process.argv[2] ?? 'dev'));
app.synth();
const report = new AwsSolutionsChecks().validateScope(app);
for (const v of report.violations)
  for (const r of v.violatingResources) console.log(v.ruleName, r.constructPath);
console.log('violations', report.violations.length, Date.now() - t0, 'ms');
