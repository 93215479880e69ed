/**
 * Small node:http helpers shared by the local stack's servers (the API Gateway adapter and the
 * Upstash REST adapter).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Largest request body the local servers accept; API Gateway's payload limit is 10 MB. */
export const MAX_BODY_BYTES = 10 * 1024 * 1024;

/** The whole request body, or undefined when it exceeds MAX_BODY_BYTES (drained, not buffered). */
export function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) tooBig = true;
      else chunks.push(c);
    });
    req.on('end', () => resolve(tooBig ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
