/**
 * A latency-injecting HTTP reverse proxy for the "S3-like" benchmark profile.
 *
 * Each request's response headers are held until `ttfbMs ± jitterMs` after the request arrived,
 * which models S3 Standard's time-to-first-byte (≈15 ms) or API Gateway + a warm Lambda (≈10 ms).
 * The delay is per request, not per connection, so keep-alive clients pay it on every GET exactly
 * as they would against AWS. Bodies are streamed through untouched in both directions.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LatencyProxyOptions {
  /** Upstream base URL; may be set later with setTarget() (requests before that get 502). */
  target?: string;
  ttfbMs: number;
  jitterMs?: number;
  port?: number;
}

export interface LatencyProxy {
  url: string;
  requests(): number;
  /** Sum of the per-request time-to-first-byte targets applied so far (ms). */
  plannedDelayMs(): number;
  /** Points the proxy at another upstream (e.g. the emulator, known only after the stack started). */
  setTarget(target: string): void;
  /** Changes the injected latency for subsequent requests (0 = a plain pass-through hop). */
  setLatency(ttfbMs: number, jitterMs?: number): void;
  close(): Promise<void>;
}

export async function startLatencyProxy(options: LatencyProxyOptions): Promise<LatencyProxy> {
  let target = options.target ? new URL(options.target) : undefined;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  let ttfb = options.ttfbMs;
  let jitter = options.jitterMs ?? options.ttfbMs / 5;
  let count = 0;
  let planned = 0;

  const server = http.createServer((req, res) => {
    count++;
    const started = performance.now();
    const delay = Math.max(0, ttfb + (Math.random() * 2 - 1) * jitter);
    planned += delay;
    if (!target) {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end('latency proxy: no upstream configured yet');
      return;
    }
    const upstream = http.request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        // The client's Host passes through unchanged: presigned URLs are signed for this proxy's
        // host (bench/run.ts makes it the public S3 endpoint), and S3 — the local one included,
        // local/s3-auth.ts — refuses a request whose signed host differs (SignatureDoesNotMatch).
        headers: req.headers,
        agent,
      },
      (up) => {
        const wait = delay - (performance.now() - started);
        const respond = () => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        };
        if (wait > 0) setTimeout(respond, wait);
        else respond();
      },
    );
    upstream.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`latency proxy: upstream error: ${err.message}`);
    });
    req.pipe(upstream);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(options.port ?? 0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => count,
    plannedDelayMs: () => planned,
    setTarget: (t) => {
      target = new URL(t);
    },
    setLatency: (ms, j) => {
      ttfb = ms;
      jitter = j ?? ms / 5;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      agent.destroy();
    },
  };
}
