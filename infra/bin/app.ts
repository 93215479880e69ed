/**
 * The Strata CDK app: `npx cdk synth|deploy [-c strata:stage=dev|prod|localstack]`.
 * Optional context: strata:account + strata:region (pin the environment), strata:alarmEmail,
 * strata:upstashSecretName. No context lookups: synth works offline.
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { stageConfig } from '../config/stages.ts';
import { buildStrata } from '../lib/strata-app.ts';

const app = new App();
const ctx = (key: string): string | undefined => app.node.tryGetContext(`strata:${key}`);
const stage = stageConfig(ctx('stage'), {
  account: ctx('account'),
  region: ctx('region'),
  alarmEmail: ctx('alarmEmail'),
  upstashSecretName: ctx('upstashSecretName'),
});
buildStrata(app, stage);
if (stage.nag) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
