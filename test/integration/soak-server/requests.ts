/** Shared by the soak-server tests: a resolve request as API Gateway hands it to the query Lambda. */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { handler as query } from '../../../functions/handlers/query.ts';

let n = 0;

/** GET /v1/resolve?path= through the query handler; each call gets its own request id. */
export async function resolveRequest(
  token: string,
  path: string,
): Promise<APIGatewayProxyStructuredResultV2> {
  n++;
  return (await query({
    version: '2.0',
    routeKey: 'GET /v1/resolve',
    rawPath: '/v1/resolve',
    headers: { authorization: `Bearer ${token}` },
    queryStringParameters: { path },
    requestContext: { requestId: `r-${n}`, http: { method: 'GET' } },
  } as unknown as APIGatewayProxyEventV2)) as APIGatewayProxyStructuredResultV2;
}
