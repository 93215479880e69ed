/**
 * No secrets in logs (QA sweep 2): the whole local stack (HTTP adapter, handlers, pollers,
 * indexer) at DEBUG level is driven through uploads, presigned reads, token creation and
 * revocation, and the failures people provoke (no token, a forged secret, a revoked token, bad
 * input); everything it writes to stdout/stderr and its own log must hold no bearer token, no
 * database password, no Redis token and no presigned signature or credential.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalStack, startStack } from '../../../local/stack.ts';

// Before any handler module loads: the Powertools logger reads its level once, at first use.
process.env.POWERTOOLS_LOG_LEVEL = 'DEBUG';
process.env.POWERTOOLS_METRICS_DISABLED = 'true';

let stack: LocalStack;
let dir: string;
const captured: string[] = [];
const restore: Array<() => void> = [];

function tap(stream: NodeJS.WriteStream): void {
  const original = stream.write.bind(stream);
  stream.write = ((chunk: unknown, ...rest: unknown[]) => {
    captured.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
    return (original as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof stream.write;
  restore.push(() => {
    stream.write = original as typeof stream.write;
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'strata-qa-logs-'));
  tap(process.stdout);
  tap(process.stderr);
  stack = await startStack({
    stateDir: dir,
    apiPort: 0,
    scheduleIntervalMs: 0,
    log: (l) => captured.push(l),
  });
});

afterAll(async () => {
  await stack?.stop();
  for (const r of restore) r();
  rmSync(dir, { recursive: true, force: true });
});

async function api(method: string, path: string, token: string | undefined, body?: unknown) {
  const res = await fetch(`${stack.dev.apiUrl}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

describe('logs of the local stack', () => {
  it('hold no token, password, Redis token or presigned signature after a session of use and abuse', async () => {
    const admin = stack.dev.token;
    // Prepare: a file uploaded through a presigned URL and indexed.
    const up = await api('POST', '/v1/uploads', admin, { path: '/qa/logs.txt', size: 5 });
    expect(up.status).toBe(201);
    const put = await fetch(up.body.url, { method: 'PUT', headers: up.body.headers, body: 'hello' });
    expect(put.status).toBe(200);
    await stack.drain();
    // Act: reads with presigned URLs, a token's life, and the failures people provoke.
    const resolved = await api('GET', '/v1/resolve?path=/qa/logs.txt&presign=1', admin);
    expect(resolved.body.url).toMatch(/X-Amz-Signature=/);
    const created = await api('POST', '/v1/tokens', admin, { name: 'qa-logs', scopes: ['read'] });
    const reader = created.body.token as string;
    expect((await api('GET', '/v1/list?path=/qa', reader)).status).toBe(200);
    const forged = `${reader.slice(0, -4)}${reader.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
    expect((await api('GET', '/v1/list?path=/qa', forged)).status).toBe(401);
    expect((await api('GET', '/v1/list?path=/qa', undefined)).status).toBe(401);
    expect((await api('DELETE', `/v1/tokens/${created.body.id}`, admin)).status).toBeLessThan(300);
    expect((await api('GET', '/v1/list?path=/qa', reader)).status).toBe(401);
    expect((await api('POST', '/v1/uploads', reader, { path: '/qa/x', size: 1 })).status).toBe(401);
    expect((await api('GET', '/v1/resolve?path=/a%00b', admin)).status).toBe(400);
    const multi = await api('POST', '/v1/uploads', admin, { path: '/qa/big.bin', size: 9 * 1024 * 1024 });
    expect(multi.body.parts?.length).toBeGreaterThan(0);
    expect((await api('DELETE', `/v1/uploads/${multi.body.uploadId}`, admin)).status).toBe(204);
    await stack.drain();

    // Assess: something was logged (so the check below is not vacuous), and no secret in it.
    const log = captured.join('');
    expect(log).toMatch(/batch indexed/);
    const password = decodeURIComponent(new URL(stack.dev.databaseUrl as string).password);
    const secrets: Array<[string, string]> = [
      ['admin token', admin],
      ['created token', reader],
      ['forged token', forged],
      ['database password', password],
      ...(stack.dev.redis ? ([['redis token', stack.dev.redis.token]] as Array<[string, string]>) : []),
      ['presigned signature', 'X-Amz-Signature'],
      ['presigned credential', 'X-Amz-Credential'],
      ['bearer header', 'Bearer stk_'],
    ];
    for (const [what, secret] of secrets) {
      expect(secret.length, what).toBeGreaterThan(8);
      expect(log.includes(secret), `${what} appears in the logs`).toBe(false);
    }
  });
});
