import { describe, expect, it } from 'vitest';
import type { HttpRoute } from '../../../functions/handlers/routes.ts';
import {
  buildEvent,
  compileRoutes,
  isTextContentType,
  mapResult,
  matchRoute,
} from '../../../local/http-adapter.ts';

const routes: HttpRoute[] = [
  { routeKey: 'GET /health', lambda: 'health', public: true },
  { routeKey: 'GET /v1/by-date/{date}', lambda: 'query' },
  { routeKey: 'POST /v1/uploads:batch', lambda: 'uploads' },
  { routeKey: 'POST /v1/uploads/{id}/complete', lambda: 'uploads' },
];
const compiled = compileRoutes(routes);

describe('matchRoute', () => {
  it('matches literal routes and path parameters (one segment, decoded)', () => {
    expect(matchRoute(compiled, 'GET', '/health')?.route.lambda).toBe('health');
    expect(matchRoute(compiled, 'GET', '/v1/by-date/2024-01-02')).toMatchObject({
      pathParameters: { date: '2024-01-02' },
    });
    expect(matchRoute(compiled, 'POST', '/v1/uploads/a%20b/complete')?.pathParameters).toEqual({ id: 'a b' });
    expect(matchRoute(compiled, 'POST', '/v1/uploads:batch')?.route.routeKey).toBe('POST /v1/uploads:batch');
  });

  it('does not match another method, an empty parameter or extra segments', () => {
    expect(matchRoute(compiled, 'POST', '/health')).toBeUndefined();
    expect(matchRoute(compiled, 'GET', '/v1/by-date/')).toBeUndefined();
    expect(matchRoute(compiled, 'GET', '/v1/by-date/a/b')).toBeUndefined();
  });
});

describe('buildEvent', () => {
  const base = {
    method: 'GET',
    sourceIp: '127.0.0.1',
    domainName: '127.0.0.1:1234',
    httpVersion: '1.1',
    routeKey: 'GET /v1/by-date/{date}',
    now: new Date('2020-03-12T19:03:58.123Z'),
  };

  it('builds a payload format 2.0 event', () => {
    const e = buildEvent({
      ...base,
      rawUrl: '/v1/by-date/2024-01-02?a=1&a=2&b=x%20y&empty=',
      rawHeaders: [
        'Host',
        'h',
        'X-Multi',
        'one',
        'x-multi',
        'two',
        'Cookie',
        'c1=v1; c2=v2',
        'User-Agent',
        'ua/1',
      ],
      body: Buffer.alloc(0),
      pathParameters: { date: '2024-01-02' },
    });
    expect(e).toMatchObject({
      version: '2.0',
      routeKey: 'GET /v1/by-date/{date}',
      rawPath: '/v1/by-date/2024-01-02',
      rawQueryString: 'a=1&a=2&b=x%20y&empty=',
      queryStringParameters: { a: '1,2', b: 'x y', empty: '' },
      headers: { host: 'h', 'x-multi': 'one,two', 'user-agent': 'ua/1' },
      cookies: ['c1=v1', 'c2=v2'],
      pathParameters: { date: '2024-01-02' },
      isBase64Encoded: false,
      requestContext: {
        http: {
          method: 'GET',
          path: '/v1/by-date/2024-01-02',
          protocol: 'HTTP/1.1',
          sourceIp: '127.0.0.1',
          userAgent: 'ua/1',
        },
        routeKey: 'GET /v1/by-date/{date}',
        stage: '$default',
        domainName: '127.0.0.1:1234',
        time: '12/Mar/2020:19:03:58 +0000',
        timeEpoch: 1584039838123,
      },
    });
    expect(e.headers).not.toHaveProperty('cookie');
    expect(e.body).toBeUndefined();
    expect(e.requestContext.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('omits queryStringParameters, cookies and pathParameters when there are none', () => {
    const e = buildEvent({
      ...base,
      rawUrl: '/health',
      rawHeaders: [],
      body: Buffer.alloc(0),
      routeKey: 'GET /health',
    });
    expect(e.rawQueryString).toBe('');
    expect(e).not.toHaveProperty('queryStringParameters');
    expect(e).not.toHaveProperty('cookies');
    expect(e).not.toHaveProperty('pathParameters');
  });

  it('passes text bodies as text and anything else base64', () => {
    const json = buildEvent({
      ...base,
      rawUrl: '/x',
      rawHeaders: ['Content-Type', 'application/json; charset=utf-8'],
      body: Buffer.from('{"a":"é"}'),
    });
    expect(json).toMatchObject({ body: '{"a":"é"}', isBase64Encoded: false });
    const bin = Buffer.from([0, 255, 1, 2]);
    const raw = buildEvent({
      ...base,
      rawUrl: '/x',
      rawHeaders: ['Content-Type', 'application/octet-stream'],
      body: bin,
    });
    expect(raw).toMatchObject({ body: bin.toString('base64'), isBase64Encoded: true });
    const none = buildEvent({ ...base, rawUrl: '/x', rawHeaders: [], body: bin });
    expect(none.isBase64Encoded).toBe(true);
  });

  it('classifies content types like API Gateway', () => {
    for (const t of [
      'text/plain',
      'application/json',
      'application/vnd.api+json',
      'application/xml',
      'application/x-www-form-urlencoded',
    ])
      expect(isTextContentType(t)).toBe(true);
    for (const t of ['application/octet-stream', 'image/png', undefined])
      expect(isTextContentType(t)).toBe(false);
  });
});

describe('mapResult', () => {
  it('turns a result without statusCode into 200 JSON (strings as is)', () => {
    expect(mapResult({ a: 1 })).toMatchObject({
      statusCode: 200,
      headers: { 'content-type': 'application/json' },
    });
    expect(mapResult({ a: 1 }).body.toString()).toBe('{"a":1}');
    expect(mapResult('hello').body.toString()).toBe('hello');
    expect(mapResult([1, 2]).body.toString()).toBe('[1,2]');
  });

  it('honours statusCode, headers, cookies and isBase64Encoded', () => {
    const m = mapResult({
      statusCode: 201,
      headers: { 'X-A': 'b', 'Content-Length-Hint': 3 },
      cookies: ['a=1; Path=/', 'b=2'],
      body: Buffer.from([0, 1, 255]).toString('base64'),
      isBase64Encoded: true,
    });
    expect(m.statusCode).toBe(201);
    expect(m.headers).toEqual({
      'x-a': 'b',
      'content-length-hint': '3',
      'set-cookie': ['a=1; Path=/', 'b=2'],
    });
    expect([...m.body]).toEqual([0, 1, 255]);
  });
});
