/**
 * API: one HTTP API (API Gateway v2) whose routes come from functions/handlers/routes.ts, stage-wide
 * throttling, and JSON access logs. Authentication is the bearer token each handler checks against
 * hashed tokens in PostgreSQL (design.md §7), so routes carry no API Gateway authorizer.
 */
import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { httpRoutes } from '../../functions/handlers/routes.ts';
import type { StrataFunction } from '../constructs/strata-function.ts';
import { createFunctions, type FunctionResources, lambdasIn, upstashAccess } from '../lib/functions.ts';
import { acknowledge } from '../lib/nag.ts';

export interface ApiStackProps extends StackProps, Omit<FunctionResources, 'upstash'> {}

/** `GET /v1/by-date/{date}` → method + path, exactly as API Gateway route keys spell them. */
export function parseRouteKey(routeKey: string): { method: apigw.HttpMethod; path: string } {
  const m = /^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (\/\S*)$/.exec(routeKey);
  if (!m) throw new Error(`route key "${routeKey}" in functions/handlers/routes.ts is not "<METHOD> /path"`);
  return { method: m[1] as apigw.HttpMethod, path: m[2]! };
}

export class ApiStack extends Stack {
  readonly api: apigw.HttpApi;
  readonly functions: Record<string, StrataFunction>;
  readonly url: string;

  constructor(scope: Construct, id: string, props: ApiStackProps) {
    super(scope, id, props);
    this.functions = createFunctions(this, lambdasIn('api'), {
      ...props,
      upstash: upstashAccess(this, props.stage),
    });

    this.api = new apigw.HttpApi(this, 'HttpApi', {
      apiName: `${props.stage.prefix}-api`,
      description: 'Strata HTTP API v1',
      createDefaultStage: false,
    });
    const accessLogs = new logs.LogGroup(this, 'AccessLogs', {
      retention: logs.RetentionDays[props.stage.logRetention],
      removalPolicy: props.stage.bucket.removalPolicy,
    });
    const stage = new apigw.HttpStage(this, 'DefaultStage', {
      httpApi: this.api,
      stageName: '$default',
      autoDeploy: true,
      throttle: {
        rateLimit: props.stage.api.throttleRateLimit,
        burstLimit: props.stage.api.throttleBurstLimit,
      },
      accessLogSettings: {
        destination: new apigw.LogGroupLogDestination(accessLogs),
        format: AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            ip: '$context.identity.sourceIp',
            requestTime: '$context.requestTime',
            routeKey: '$context.routeKey',
            status: '$context.status',
            latency: '$context.responseLatency',
            integrationLatency: '$context.integrationLatency',
            integrationError: '$context.integrationErrorMessage',
            responseLength: '$context.responseLength',
          }),
        ),
      },
    });

    const integrations = new Map<string, HttpLambdaIntegration>();
    for (const route of httpRoutes) {
      const fn = this.functions[route.lambda];
      if (!fn)
        throw new Error(`route ${route.routeKey} targets "${route.lambda}", which is not in the API stack`);
      let integration = integrations.get(route.lambda);
      if (!integration) {
        integration = new HttpLambdaIntegration(`${fn.node.id}Integration`, fn);
        integrations.set(route.lambda, integration);
      }
      const { method, path } = parseRouteKey(route.routeKey);
      const [r] = this.api.addRoutes({ path, methods: [method], integration });
      acknowledge(r!, [
        'APIG4',
        route.public
          ? `${route.routeKey} is public by design (liveness probe, no data).`
          : 'Authorized in the handler: bearer tokens are checked against hashed, scoped tokens in PostgreSQL.',
      ]);
    }

    this.url = stage.url;
    // LocalStack serves the API at http://<id>.execute-api.localhost.localstack.cloud:4566/.
    new CfnOutput(this, 'ApiId', { value: this.api.apiId });
    new CfnOutput(this, 'ApiUrl', {
      value: this.url,
      description: 'STRATA_API_URL for the CLI and mount clients',
    });
  }
}
