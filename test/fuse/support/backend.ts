/**
 * Backend for the real-FUSE tests: the real local stack (local/stack.ts) — fauxqs S3 holding the
 * bytes, synthesized S3 events through SQS into the real indexer and PostgreSQL, and the real query
 * API behind the HTTP API v2 adapter. `put` writes an object the way a producer would and waits
 * until the indexer has made it resolvable, so the mount under test sees exactly what a deployment
 * would serve.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import pLimit from 'p-limit';
import { applyObjectChanges } from '../../../functions/adapters/pg/index-store.ts';
import { keyForPath } from '../../../functions/core/paths.ts';
import { normalizeSequencer } from '../../../functions/core/sequencer.ts';
import {
  type LocalStack,
  BUCKET as STACK_BUCKET,
  DATA_PREFIX as STACK_PREFIX,
  startStack,
} from '../../../local/stack.ts';

export const REGION = 'us-east-1';
export const BUCKET = STACK_BUCKET;
export const DATA_PREFIX = STACK_PREFIX;
// The local stack's emulator accepts any credentials; these are never real.
export const AWS_ENV = {
  AWS_ACCESS_KEY_ID: 'strata-local',
  AWS_SECRET_ACCESS_KEY: 'strata-local-secret',
  AWS_REGION: REGION,
};

export interface Backend {
  apiUrl: string;
  s3Endpoint: string;
  /** The dev token of the stack (all scopes). */
  token: string;
  stack: LocalStack;
  s3: S3Client;
  /** Writes one object and waits until the indexer has it. */
  put(path: string, bytes: Buffer, date?: string): Promise<{ etag: string; sha256: string }>;
  /** Writes many small objects concurrently, then waits for the indexer once. */
  putMany(entries: Array<{ path: string; bytes: Buffer; date?: string }>): Promise<void>;
  /**
   * Index entries through the indexer's own write path (applyObjectChanges in one transaction)
   * without writing S3 bytes: for listing-only tests of huge directories, where 10,000 PUTs through
   * the emulator would dominate the suite's time. Listing and stat never read S3, so what the mount
   * sees is exactly what the indexer would have produced.
   */
  indexOnly(entries: Array<{ path: string; size: number; etag: string; date?: string }>): Promise<void>;
  stop(): Promise<void>;
}

const MiB = 1024 * 1024;

export async function startBackend(): Promise<Backend> {
  const stateDir = mkdtempSync(join(tmpdir(), 'strata-fuse-stack-'));
  const stack = await startStack({ stateDir, apiPort: 0, scheduleIntervalMs: 0, log: () => {} });
  const s3 = stack.s3;

  async function write(
    path: string,
    bytes: Buffer,
    date?: string,
  ): Promise<{ etag: string; sha256: string }> {
    const key = keyForPath(DATA_PREFIX, path);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const Metadata: Record<string, string> = { sha256, ...(date ? { 'strata-date': date } : {}) };
    let etag: string;
    // The emulator takes single PUTs up to 11 MiB; larger bodies go multipart, as in production.
    if (bytes.length <= 8 * MiB) {
      const r = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: bytes, Metadata }));
      etag = r.ETag ?? '';
    } else {
      const r = await new Upload({
        client: s3,
        params: { Bucket: BUCKET, Key: key, Body: bytes, Metadata },
        partSize: 8 * MiB,
      }).done();
      etag = r.ETag ?? '';
    }
    return { etag: etag.replace(/"/g, ''), sha256 };
  }

  return {
    apiUrl: stack.dev.apiUrl,
    s3Endpoint: stack.dev.s3Endpoint ?? '',
    token: stack.dev.token,
    stack,
    s3,
    async put(path, bytes, date) {
      const r = await write(path, bytes, date);
      await stack.drain();
      return r;
    },
    async putMany(entries) {
      const limit = pLimit(32);
      await Promise.all(entries.map((e) => limit(() => write(e.path, e.bytes, e.date))));
      await stack.drain(120_000);
    },
    async indexOnly(entries) {
      // One transaction per 4,000 entries: the indexer journals at most 4,096 changes per
      // transaction (a real S3 event batch is far smaller).
      const CHUNK = 4000;
      for (let from = 0; from < entries.length; from += CHUNK) {
        const client = await stack.pool.connect();
        try {
          await client.query('BEGIN');
          await applyObjectChanges(
            client,
            entries.slice(from, from + CHUNK).map((e, i) => ({
              kind: 'put' as const,
              key: keyForPath(DATA_PREFIX, e.path),
              path: e.path,
              size: e.size,
              etag: e.etag,
              sequencer: normalizeSequencer((from + i + 1).toString(16)),
              lastModified: new Date(),
              ...(e.date ? { date: e.date } : {}),
            })),
            { source: 'event' },
          );
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK');
          throw err;
        } finally {
          client.release();
        }
      }
    },
    async stop() {
      await stack.stop();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
