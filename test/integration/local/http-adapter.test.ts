import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpRoute, LambdaName } from '../../../functions/handlers/routes.ts';
import { type HttpAdapter, startHttpAdapter } from '../../../local/http-adapter.ts';
import { HandlerMissingError } from '../../../local/lambda-runtime.ts';

const routes: HttpRoute[] = [
  { routeKey: 'GET /echo/{id}', lambda: 'query' },
  { routeKey: 'POST /binary', lambda: 'uploads' },
  { routeKey: 'GET /plain', lambda: 'health' },
  { routeKey: 'GET /missing', lambda: 'peers' },
  { routeKey: 'GET /crash', lambda: 'admin' },
];

let adapter: HttpAdapter;
let lastEvent: APIGatewayProxyEventV2 | undefined;

beforeAll(async () => {
  adapter = await startHttpAdapter({
    routes,
    port: 0,
    invoke: async (lambda: LambdaName, event) => {
      lastEvent = event;
      if (lambda === 'peers') throw new HandlerMissingError('peers', 'functions/handlers/peers.ts');
      if (lambda === 'admin') throw new Error('boom');
      if (lambda === 'health') return { ok: true };
      if (lambda === 'uploads') {
        // Echo the bytes back reversed, as a binary response.
        const bytes = Buffer.from(event.body ?? '', event.isBase64Encoded ? 'base64' : 'utf8');
        return {
          statusCode: 200,
          headers: { 'content-type': 'application/octet-stream' },
          body: Buffer.from(bytes).reverse().toString('base64'),
          isBase64Encoded: true,
        };
      }
      return {
        statusCode: 202,
        headers: { 'x-route': event.routeKey },
        cookies: ['a=1', 'b=2; HttpOnly'],
        body: 'done',
      };
    },
  });
});

afterAll(async () => {
  await adapter?.close();
});

describe('HTTP adapter over real HTTP', () => {
  it('builds the v2 event and maps status, headers and cookies back', async () => {
    const res = await fetch(`${adapter.url}/echo/x%20y?q=1&q=2`, {
      headers: { cookie: 'c=1; d=2', 'X-Thing': 'T', 'user-agent': 'test-agent' },
    });
    expect(res.status).toBe(202);
    expect(res.headers.get('x-route')).toBe('GET /echo/{id}');
    expect(res.headers.getSetCookie()).toEqual(['a=1', 'b=2; HttpOnly']);
    expect(await res.text()).toBe('done');
    expect(lastEvent).toMatchObject({
      version: '2.0',
      routeKey: 'GET /echo/{id}',
      rawPath: '/echo/x%20y',
      rawQueryString: 'q=1&q=2',
      queryStringParameters: { q: '1,2' },
      pathParameters: { id: 'x y' },
      cookies: ['c=1', 'd=2'],
      headers: { 'x-thing': 'T', 'user-agent': 'test-agent' },
      requestContext: {
        http: { method: 'GET', sourceIp: '127.0.0.1', userAgent: 'test-agent', protocol: 'HTTP/1.1' },
      },
    });
  });

  it('round-trips binary request and response bodies', async () => {
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const res = await fetch(`${adapter.url}/binary`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: bytes,
    });
    expect(lastEvent?.isBase64Encoded).toBe(true);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(Buffer.from(bytes).reverse());
  });

  it('maps a result without statusCode to 200 JSON', async () => {
    const res = await fetch(`${adapter.url}/plain`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.json()).toEqual({ ok: true });
  });

  it('answers 404 JSON for unknown routes, 501 for a missing handler module, 500 for a crash', async () => {
    const notFound = await fetch(`${adapter.url}/nowhere`);
    expect(notFound.status).toBe(404);
    expect(((await notFound.json()) as { error: { code: string } }).error.code).toBe('not_found');
    const missing = await fetch(`${adapter.url}/missing`);
    expect(missing.status).toBe(501);
    expect(((await missing.json()) as { error: { message: string } }).error.message).toMatch(
      /functions\/handlers\/peers\.ts/,
    );
    const crash = await fetch(`${adapter.url}/crash`);
    expect(crash.status).toBe(500);
    expect(await crash.json()).toEqual({ message: 'Internal Server Error' });
  });
});
