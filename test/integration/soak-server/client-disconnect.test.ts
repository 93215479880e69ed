/**
 * Clients that go away mid-request or mid-response (the local API adapter; in AWS, API Gateway
 * absorbs this). Nothing may wedge: every handler invocation finishes, no request promise is left
 * pending, and the server keeps answering.
 */
import { connect } from 'node:net';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpRoute } from '../../../functions/handlers/routes.ts';
import { type HttpAdapter, startHttpAdapter } from '../../../local/http-adapter.ts';

const routes: HttpRoute[] = [
  { routeKey: 'GET /big', lambda: 'query' },
  { routeKey: 'POST /upload', lambda: 'uploads' },
];
let adapter: HttpAdapter;
let started = 0;
let finished = 0;
const logged: Array<Record<string, unknown>> = [];
/** Released by the test to let a held handler answer. */
let release: () => void = () => {};

beforeAll(async () => {
  adapter = await startHttpAdapter({
    routes,
    log: (f) => logged.push(f),
    invoke: async (_lambda, event: APIGatewayProxyEventV2) => {
      started++;
      try {
        if (event.rawQueryString === 'hold=1') await new Promise<void>((r) => (release = r));
        // 4 MiB: larger than the socket buffers, so the response is still being written when the
        // client goes away.
        return {
          statusCode: 200,
          headers: { 'content-type': 'text/plain' },
          body: 'x'.repeat(4 * 1024 * 1024),
        };
      } finally {
        finished++;
      }
    },
  });
});

afterAll(async () => {
  await adapter?.close();
});

async function until(what: string, fn: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A raw HTTP/1.1 client that sends `head` (+ part of a body) and hangs up after `afterBytes` of the answer. */
function rawRequest(text: string, afterBytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let got = 0;
    const s = connect(adapter.port, '127.0.0.1', () => s.write(text));
    s.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= afterBytes) s.destroy();
    });
    s.on('close', () => resolve(got));
    s.on('error', reject);
    if (afterBytes === 0) setTimeout(() => s.destroy(), 50);
  });
}

describe('clients disconnecting', () => {
  it('mid-response, during the handler and mid-body: the server finishes each and keeps serving', async () => {
    const base = { started, finished };
    // Mid-response: 50 clients read 64 KiB of a 4 MiB answer and hang up.
    for (let i = 0; i < 50; i++) {
      await rawRequest(`GET /big HTTP/1.1\r\nhost: x\r\n\r\n`, 64 * 1024);
    }
    // During the handler: the client leaves before any answer; the handler then completes.
    const gone = rawRequest(`GET /big?hold=1 HTTP/1.1\r\nhost: x\r\n\r\n`, 0);
    await until('the held handler to start', () => started === base.started + 51);
    await gone;
    release();
    // Mid-body: the client announces 1000 bytes, sends 10 and hangs up; the body read must end.
    await rawRequest(`POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n0123456789`, 0);

    await until('every started handler to finish', () => finished === started);
    expect(started - base.started).toBe(51);
    // The aborted body is reported as an adapter error, not left pending.
    await until('the aborted body to be reported', () =>
      logged.some((l) => l.event === 'http_adapter_error'),
    );

    const res = await request(`${adapter.url}/big`, { headersTimeout: 10_000, bodyTimeout: 10_000 });
    expect(res.statusCode).toBe(200);
    expect((await res.body.text()).length).toBe(4 * 1024 * 1024);
  });
});
