/**
 * HTTP client for Strata API v1, shared by the CLI and the mount client. Keeps connections alive
 * (undici Agent), maps `{"error":{code,message}}` bodies to the core's typed errors, and retries
 * idempotent requests on 5xx/connection errors with jittered backoff.
 */
import { Agent, request } from 'undici';
import {
  ConflictError,
  ForbiddenError,
  NotFoundError,
  PreconditionFailedError,
  QuotaExceededError,
  StrataError,
  UnauthorizedError,
  UnavailableError,
  ValidationError,
} from '../../functions/core/errors.ts';

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
  /** Retry on 5xx / network errors (default: true for GET/HEAD/DELETE). */
  retry?: boolean;
  signal?: AbortSignal;
}

export interface ApiClientOptions {
  apiUrl: string;
  token: string;
  /** Per-request timeout. API calls are small; 10 s is generous even through API Gateway. */
  timeoutMs?: number;
  retries?: number;
  connections?: number;
}

export class ApiClient {
  readonly apiUrl: string;
  private readonly token: string;
  private readonly agent: Agent;
  private readonly timeoutMs: number;
  private readonly retries: number;

  constructor(options: ApiClientOptions) {
    this.apiUrl = options.apiUrl.replace(/\/+$/, '');
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.retries = options.retries ?? 3;
    this.agent = new Agent({ connections: options.connections ?? 32, keepAliveTimeout: 30_000 });
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const url = new URL(this.apiUrl + path);
    for (const [k, v] of Object.entries(options.query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}`, ...options.headers };
    let body: string | undefined;
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    const retry = options.retry ?? ['GET', 'HEAD', 'DELETE'].includes(method);
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await request(url, {
          method: method as 'GET',
          headers,
          body,
          dispatcher: this.agent,
          headersTimeout: this.timeoutMs,
          bodyTimeout: this.timeoutMs,
          signal: options.signal,
        });
        const text = await res.body.text();
        if (res.statusCode >= 200 && res.statusCode < 300) {
          return (text ? JSON.parse(text) : undefined) as T;
        }
        const err = toError(res.statusCode, text, method, url.pathname);
        if (retry && res.statusCode >= 500 && attempt < this.retries) {
          await backoff(attempt);
          continue;
        }
        throw err;
      } catch (err) {
        if (err instanceof StrataError) throw err;
        if (retry && attempt < this.retries && !options.signal?.aborted) {
          await backoff(attempt);
          continue;
        }
        throw new UnavailableError(
          `cannot reach the Strata API at ${this.apiUrl} (${(err as Error).message}); is it running?`,
          { cause: err },
        );
      }
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

function backoff(attempt: number): Promise<void> {
  // Full jitter: 100 ms base doubling, capped at 2 s.
  const ms = Math.random() * Math.min(2000, 100 * 2 ** attempt);
  return new Promise((r) => setTimeout(r, ms));
}

export function toError(status: number, text: string, method: string, path: string): StrataError {
  let code = 'http_error';
  let message = `${method} ${path} failed with HTTP ${status}`;
  let remaining = 0;
  try {
    const parsed = JSON.parse(text) as {
      error?: { code?: string; message?: string; remainingBytes?: number };
    };
    if (parsed.error?.message) message = parsed.error.message;
    if (parsed.error?.code) code = parsed.error.code;
    remaining = parsed.error?.remainingBytes ?? 0;
  } catch {
    if (text) message += `: ${text.slice(0, 200)}`;
  }
  switch (status) {
    case 400:
    case 422:
      return new ValidationError(message, { code });
    case 401:
      return new UnauthorizedError(message);
    case 403:
      return new ForbiddenError(message);
    case 404:
      return new NotFoundError(message);
    case 409:
      return new ConflictError(message, { code });
    case 412:
      return new PreconditionFailedError(message);
    case 413:
      return new QuotaExceededError(message, remaining);
    default:
      return status >= 500 ? new UnavailableError(message) : new StrataError(code, message);
  }
}
