import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LatencyProxy, startLatencyProxy } from '../../../bench/compare/latency-proxy.ts';

describe('latency proxy', () => {
  const payload = randomBytes(3 * 1024 * 1024 + 17);
  let origin: http.Server;
  let proxy: LatencyProxy;

  beforeAll(async () => {
    origin = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        res.writeHead(200, { 'x-method': req.method ?? '', 'x-body-sha256': sha(body) });
        res.end(req.method === 'GET' ? payload : body);
      });
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const { port } = origin.address() as AddressInfo;
    proxy = await startLatencyProxy({ target: `http://127.0.0.1:${port}`, ttfbMs: 30, jitterMs: 0 });
  });

  afterAll(async () => {
    await proxy.close();
    await new Promise<void>((r) => origin.close(() => r()));
  });

  it('passes response bytes through exactly and holds every request for its TTFB', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${proxy.url}/object`);
      const body = Buffer.from(await res.arrayBuffer());
      expect(sha(body)).toBe(sha(payload));
    }
    // Per request, not per connection: fetch reuses one keep-alive connection for all three.
    expect(proxy.requests()).toBe(3);
    expect(proxy.plannedDelayMs()).toBe(90);
  });

  it('streams request bodies upstream untouched', async () => {
    const body = randomBytes(1024 * 1024);
    const res = await fetch(`${proxy.url}/put`, { method: 'PUT', body });
    expect(res.headers.get('x-body-sha256')).toBe(sha(body));
    expect(res.headers.get('x-method')).toBe('PUT');
  });
});

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}
