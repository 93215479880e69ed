/**
 * GET /health — liveness of the API, no auth (routes.ts marks it public). Deliberately touches no
 * dependency: a load balancer or `curl` must get an answer even while PostgreSQL is down, so this
 * says "the API answers", not "everything is healthy".
 */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';

export async function handler(_event: APIGatewayProxyEventV2): Promise<APIGatewayProxyStructuredResultV2> {
  return {
    statusCode: 200,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
    body: JSON.stringify({ status: 'ok' }),
  };
}
