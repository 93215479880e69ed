/**
 * The upload engine behind `strata upload` and `strata sync`.
 *
 * Design note. Every byte goes straight to S3 through presigned URLs; the API only hands out
 * sessions. One shared limiter caps simultaneous PUTs (`concurrency`), whether they are whole small
 * files or parts of a large one, so a mix of both keeps the pipe full without oversubscribing it.
 * - Small files (≤ BATCH_MAX_BYTES) are hashed (read once, kept in memory when tiny), then presigned
 *   100 at a time through POST /v1/uploads:batch — one API round trip per 100 files.
 * - Large files get a session each (POST /v1/uploads with an Idempotency-Key, so a retried request
 *   cannot create a second session); multipart parts upload in parallel, each retried on its own
 *   (a part whose URL expired — 403 — gets a fresh URL from GET /v1/uploads/{id}/parts),
 *   and every finished part is recorded in the resume state so an interrupted upload sends only
 *   the missing parts next time. The SHA-256 of a large file is computed alongside the upload and
 *   sent with `complete`, so hashing never delays the first byte.
 * - Unchanged files (same size and SHA-256 as the index) are skipped; the remote side is read
 *   lazily through RemoteIndex (one /v1/list per directory that exists remotely, none below a
 *   directory that does not), so listing overlaps hashing and PUTs instead of preceding them.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import pLimit, { type LimitFunction } from 'p-limit';
import { Agent, request } from 'undici';
import type { ResolveResponse, UploadSession } from '../../functions/core/api-types.ts';
import { ConflictError, NotFoundError, StrataError } from '../../functions/core/errors.ts';
import type { ApiClient } from '../api/client.ts';
import { IN_MEMORY_MAX, readAndHash, sha256File } from './hash.ts';
import { type RemoteFile, RemoteIndex } from './remote-index.ts';
import type { ResumeState, ResumeStore } from './resume-state.ts';
import { DEFAULT_RETRY, isRetryableStatus, PutError, type RetryPolicy, withRetries } from './retry.ts';
import type { LocalFile } from './scan.ts';

/** Files up to this size go through the batch endpoint (the server signs single PUTs for them). */
export const BATCH_MAX_BYTES = 16 * 1024 * 1024;
/** The API's default multipart threshold (STRATA_MULTIPART_THRESHOLD): see uploadLarge. */
const HASH_BEFORE_POST_MAX = 64 * 1024 * 1024;
/** The API's batch limit. */
export const BATCH_SIZE = 100;
/**
 * Simultaneous PUTs. 16 keeps a 1–10 Gbit/s link busy with 8 MiB parts and hides the per-request
 * latency of small files, without exhausting file descriptors or the emulator.
 */
export const DEFAULT_CONCURRENCY = 16;
/**
 * Batches of small files being hashed/presigned/PUT at once. One batch call takes a few hundred
 * milliseconds on a busy API while 100 PUTs of 4 KiB take about as long; four in flight keep the
 * PUT slots fed with a margin for API latency spikes.
 */
const GROUPS_IN_FLIGHT = 4;
/**
 * Sizes of the first small-file groups (then BATCH_SIZE each): a slow start. Nothing is PUT until
 * the first group is read, hashed and presigned; with 100 files that is ~100 reads plus a batch
 * call of 100 entries before the first byte moves. A first group of one PUT slot's worth starts
 * the PUTs after a few reads, and the growing groups behind it reach full batches within ~250
 * files, so large runs keep one API call per 100 files.
 */
const FIRST_GROUPS = [16, 32, 64];
/**
 * Small-file bytes held in memory between read and PUT, across all groups in flight. Four groups of
 * 100 files of up to IN_MEMORY_MAX (1 MiB) could otherwise hold 400 MiB; typical small files
 * (4–64 KiB) stay far below this, and a file over the budget is simply read again for its PUT.
 */
const HELD_MAX_BYTES = 64 * 1024 * 1024;
/** Concurrent small-file reads (see the constructor). */
const READ_CONCURRENCY = 8;

export type FileStatus = 'uploaded' | 'skipped' | 'failed';

export interface FileResult {
  local: string;
  remote: string;
  size: number;
  status: FileStatus;
  /** Why a file was skipped (`unchanged`, `empty`) or failed (the error message). */
  reason?: string;
  mode?: 'single' | 'multipart';
  sha256?: string;
  /** Parts sent in this run (multipart); fewer than partCount when resumed. */
  partsSent?: number;
  /** Bytes sent in this run when fewer than `size` (a resumed multipart upload). */
  bytesSent?: number;
  partCount?: number;
}

export interface Progress {
  filesTotal: number;
  filesDone: number;
  bytesTotal: number;
  bytesDone: number;
}

export interface UploadSummary {
  files: number;
  uploaded: number;
  skipped: number;
  failed: number;
  bytesUploaded: number;
  seconds: number;
  results: FileResult[];
}

export interface UploaderOptions {
  api: ApiClient;
  concurrency?: number;
  retry?: RetryPolicy;
  resume?: ResumeStore;
  /** Compare with the index and skip files whose size and SHA-256 match (default true). */
  skipUnchanged?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  /** Small-file bytes kept in memory between read and PUT (default HELD_MAX_BYTES, 64 MiB). */
  memoryBudgetBytes?: number;
  /** Called after each multipart part S3 acknowledged (tests and verbose output). */
  onPart?: (file: LocalFile, partNumber: number) => void;
}

type RemoteLookup = (path: string) => Promise<RemoteFile | undefined>;

export class Uploader {
  private readonly api: ApiClient;
  private readonly limit: LimitFunction;
  private readonly readLimit: LimitFunction;
  /** Bytes of small files held in memory between their read and their PUT (≤ HELD_MAX_BYTES). */
  private heldBytes = 0;
  private readonly heldMax: number;
  private readonly agent: Agent;
  private readonly retry: RetryPolicy;
  private readonly progress: Progress = { filesTotal: 0, filesDone: 0, bytesTotal: 0, bytesDone: 0 };

  constructor(private readonly options: UploaderOptions) {
    this.api = options.api;
    const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    this.limit = pLimit(concurrency);
    // Small-file reads+hashes at once: bounds open files and memory; reads of 4 KiB–16 MiB are
    // fast, so a few keep the next batch ready without competing with PUTs for sockets.
    this.readLimit = pLimit(READ_CONCURRENCY);
    // One connection per concurrent PUT; keep-alive saves a TCP (and TLS) handshake per small file.
    this.agent = new Agent({ connections: concurrency, keepAliveTimeout: 30_000, pipelining: 1 });
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.heldMax = options.memoryBudgetBytes ?? HELD_MAX_BYTES;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  async upload(files: LocalFile[]): Promise<UploadSummary> {
    const started = performance.now();
    this.progress.filesTotal += files.length;
    this.progress.bytesTotal += files.reduce((n, f) => n + f.size, 0);
    this.emit();
    const results: FileResult[] = [];
    const done = (r: FileResult, bytes: number) => {
      results.push(r);
      this.progress.filesDone++;
      if (r.status !== 'uploaded') this.progress.bytesDone += r.size - bytes;
      this.emit();
    };

    const nonEmpty: LocalFile[] = [];
    for (const f of files) {
      if (f.size === 0) {
        done({ local: f.abs, remote: f.remote, size: 0, status: 'skipped', reason: 'empty' }, 0);
      } else nonEmpty.push(f);
    }
    const index =
      this.options.skipUnchanged === false
        ? undefined
        : new RemoteIndex(
            this.api,
            nonEmpty.map((f) => f.remote),
            this.options.signal,
          );
    const remote: RemoteLookup = (path) => index?.lookup(path) ?? Promise.resolve(undefined);

    const small = nonEmpty.filter((f) => f.size <= BATCH_MAX_BYTES);
    const large = nonEmpty.filter((f) => f.size > BATCH_MAX_BYTES);
    const groups: LocalFile[][] = [];
    for (let i = 0, g = 0; i < small.length; g++) {
      const n = FIRST_GROUPS[g] ?? BATCH_SIZE;
      groups.push(small.slice(i, i + n));
      i += n;
    }
    // Groups overlap: while one group's PUTs run, the next ones are hashed and presigned, so the
    // PUT slots never wait for the API. Hashing and PUTs share `this.limit`, so extra groups in
    // flight cost memory (≤ 1 MiB per small file held), not oversubscription.
    const groupLimit = pLimit(GROUPS_IN_FLIGHT);
    await Promise.all([
      ...groups.map((g) => groupLimit(() => this.uploadGroup(g, remote, done))),
      ...large.map((f) => this.uploadLarge(f, remote, done)),
    ]);
    const order = new Map(files.map((f, i) => [f.abs, i]));
    results.sort((a, b) => (order.get(a.local) ?? 0) - (order.get(b.local) ?? 0));
    const summary: UploadSummary = {
      files: files.length,
      uploaded: results.filter((r) => r.status === 'uploaded').length,
      skipped: results.filter((r) => r.status === 'skipped').length,
      failed: results.filter((r) => r.status === 'failed').length,
      // Bytes this run sent: a resumed upload counts only its missing parts, so the rate printed
      // from this is the rate achieved, not the file size over the time of its last few parts.
      bytesUploaded: results
        .filter((r) => r.status === 'uploaded')
        .reduce((n, r) => n + (r.bytesSent ?? r.size), 0),
      seconds: (performance.now() - started) / 1000,
      results,
    };
    return summary;
  }

  private emit(): void {
    this.options.onProgress?.({ ...this.progress });
  }

  private addBytes(n: number): void {
    this.progress.bytesDone += n;
    this.emit();
  }

  /** True when the index already holds these exact bytes. */
  private async unchanged(
    f: LocalFile,
    remote: RemoteLookup,
    sha256: () => Promise<string>,
  ): Promise<boolean> {
    const r = await remote(f.remote);
    if (!r || r.size !== f.size) return false;
    let remoteSha = r.sha256;
    if (!remoteSha) {
      const resolved = await this.api
        .request<ResolveResponse>('GET', '/v1/resolve', {
          query: { path: f.remote },
          signal: this.options.signal,
        })
        .catch(() => undefined);
      remoteSha = resolved?.sha256;
    }
    // Without a recorded digest identity cannot be proven: upload again rather than guess.
    return remoteSha !== undefined && remoteSha === (await sha256());
  }

  private async uploadGroup(
    group: LocalFile[],
    remote: RemoteLookup,
    done: (r: FileResult, bytes: number) => void,
  ): Promise<void> {
    if (this.options.signal?.aborted) {
      for (const f of group) done(failed(f, 'interrupted'), 0);
      return;
    }
    const prepared: Array<{ f: LocalFile; sha256: string; data?: Buffer; held: number }> = [];
    // Bytes kept for the PUT leave the budget as soon as the PUT no longer needs them.
    const release = (p: { data?: Buffer; held: number }) => {
      this.heldBytes -= p.held;
      p.held = 0;
      p.data = undefined;
    };
    try {
      await this.prepareAndSend(group, remote, done, prepared, release);
    } finally {
      for (const p of prepared) release(p);
    }
  }

  private async prepareAndSend(
    group: LocalFile[],
    remote: RemoteLookup,
    done: (r: FileResult, bytes: number) => void,
    prepared: Array<{ f: LocalFile; sha256: string; data?: Buffer; held: number }>,
    release: (p: { data?: Buffer; held: number }) => void,
  ): Promise<void> {
    await Promise.all(
      group.map((f) =>
        (async () => {
          try {
            // Its own limiter: in the PUT limiter's FIFO the next group's reads would queue behind
            // every PUT already queued, delaying its batch call until the PUT queue drains. The
            // listing wait below holds no slot at all.
            const entry = await this.readLimit(async () => {
              // Kept in memory (read once for hash and PUT) only within the byte budget; beyond
              // it the file is hashed streaming and read again for its PUT (from the page cache).
              if (f.size <= IN_MEMORY_MAX && this.heldBytes + f.size <= this.heldMax) {
                this.heldBytes += f.size;
                try {
                  const h = await readAndHash(f.abs);
                  return { f, sha256: h.sha256, data: h.data, held: f.size };
                } catch (err) {
                  this.heldBytes -= f.size;
                  throw err;
                }
              }
              return { f, sha256: await sha256File(f.abs), held: 0 };
            });
            // In the list before any await, so the group's finally releases it whatever happens.
            prepared.push(entry);
            if (await this.unchanged(f, remote, async () => entry.sha256)) {
              prepared.splice(prepared.indexOf(entry), 1);
              release(entry);
              done({ ...base(f), status: 'skipped', reason: 'unchanged', sha256: entry.sha256 }, 0);
              return;
            }
          } catch (err) {
            done(failed(f, message(err)), 0);
          }
        })(),
      ),
    );
    if (prepared.length === 0) return;
    let results: Array<{ index: number; ok: boolean; upload?: UploadSession; error?: { message: string } }>;
    try {
      ({ results } = await this.api.request<{ results: typeof results }>('POST', '/v1/uploads:batch', {
        body: {
          uploads: prepared.map((p) => ({
            path: p.f.remote,
            size: p.f.size,
            sha256: p.sha256,
            contentType: contentTypeOf(p.f.abs),
          })),
        },
        signal: this.options.signal,
      }));
    } catch (err) {
      for (const p of prepared) done(failed(p.f, message(err)), 0);
      return;
    }
    await Promise.all(
      results.map(async (r) => {
        const p = prepared[r.index];
        if (!p) return;
        if (!r.ok || !r.upload) {
          done(failed(p.f, r.error?.message ?? 'rejected by the API'), 0);
          return;
        }
        const session = r.upload;
        try {
          if (session.mode === 'single') {
            await this.limit(() => this.putSingle(p.f, session, p.data, p.sha256));
            release(p);
            done({ ...base(p.f), status: 'uploaded', mode: 'single', sha256: p.sha256 }, p.f.size);
          } else {
            // The server's threshold is below our batch size: finish it as a multipart upload.
            const r2 = await this.runMultipart(p.f, session, undefined, Promise.resolve(p.sha256));
            done(r2, p.f.size);
          }
        } catch (err) {
          done(failed(p.f, message(err)), 0);
        }
      }),
    );
  }

  private async putSingle(
    f: LocalFile,
    session: UploadSession,
    data?: Buffer,
    sha256?: string,
  ): Promise<void> {
    if (!session.url) throw new Error(`the API returned no URL for ${f.remote}`);
    let current = session;
    let renewed = false;
    const putTo = (s: UploadSession) =>
      this.put(
        s.url as string,
        { ...s.headers, 'content-length': String(f.size) },
        () => data ?? createReadStream(f.abs),
      );
    const send = async (): Promise<string> => {
      try {
        return await putTo(current);
      } catch (err) {
        // A presigned PUT URL expires (STRATA_PRESIGN_EXPIRES_SECONDS) and S3 then answers 403: a
        // file that waited behind a long queue or a slow link reaches its PUT with a stale URL.
        // Ask the API once for a new single upload of the same bytes (the old session's quota is
        // given back when its URL expires) and send again. A 403 on a URL issued just now is not
        // expiry (clock skew, revoked token): that fails the file with S3's status.
        if (!(err instanceof PutError) || err.status !== 403 || renewed) throw err;
        renewed = true;
        current = await this.startUpload(f, sha256);
        if (current.mode !== 'single' || !current.url) {
          throw new Error(`the API answered a renewed upload of ${f.remote} with a ${current.mode} session`);
        }
        return await putTo(current);
      }
    };
    await withRetries(send, this.retry, this.options.signal);
    this.addBytes(f.size);
  }

  /** POST /v1/uploads for one file (the digest when known: S3 then verifies a single PUT's body). */
  private startUpload(f: LocalFile, sha256?: string): Promise<UploadSession> {
    return this.api.request<UploadSession>('POST', '/v1/uploads', {
      body: {
        path: f.remote,
        size: f.size,
        contentType: contentTypeOf(f.abs),
        ...(sha256 ? { sha256 } : {}),
      },
      headers: { 'idempotency-key': randomUUID() },
      retry: true, // safe: the Idempotency-Key makes a repeated POST return the same session
      signal: this.options.signal,
    });
  }

  /** One PUT; returns the ETag. A fresh body per attempt (streams cannot be replayed). */
  private async put(
    url: string,
    headers: Record<string, string>,
    body: () => Buffer | NodeJS.ReadableStream,
  ): Promise<string> {
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(url, {
        method: 'PUT',
        headers,
        body: body() as Buffer,
        dispatcher: this.agent,
        signal: this.options.signal,
        // A stalled connection must fail the attempt, not hang the upload.
        headersTimeout: 60_000,
        bodyTimeout: 60_000,
      });
    } catch (err) {
      throw new PutError(`PUT failed: ${message(err)}`, undefined, !this.options.signal?.aborted, {
        cause: err,
      });
    }
    const text = await res.body.text();
    if (res.statusCode >= 200 && res.statusCode < 300) {
      const etag = res.headers.etag;
      return Array.isArray(etag) ? (etag[0] ?? '') : (etag ?? '');
    }
    const code = /<Code>([^<]+)<\/Code>/.exec(text)?.[1];
    throw new PutError(
      `S3 refused the PUT with HTTP ${res.statusCode}${code ? ` (${code})` : ''}${code === 'BadDigest' ? ': the file changed while uploading' : ''}`,
      res.statusCode,
      isRetryableStatus(res.statusCode),
    );
  }

  private async uploadLarge(
    f: LocalFile,
    remote: RemoteLookup,
    done: (r: FileResult, bytes: number) => void,
  ): Promise<void> {
    try {
      // Hash first only when the index has a same-size file (to decide a skip); otherwise hash
      // alongside the upload.
      let digest: Promise<string> | undefined;
      const sha256 = () => {
        digest ??= sha256File(f.abs);
        return digest;
      };
      if (await this.unchanged(f, remote, sha256)) {
        // An interrupted run whose upload completed (or that was finished by other means) left
        // resume state that nothing would ever read again: drop it with the skip.
        await this.options.resume?.remove(this.api.apiUrl, f.abs, f.remote, f.size, f.mtimeMs);
        done({ ...base(f), status: 'skipped', reason: 'unchanged', sha256: await sha256() }, 0);
        return;
      }
      const resume = await this.options.resume?.load(this.api.apiUrl, f.abs, f.remote, f.size, f.mtimeMs);
      if (resume) {
        try {
          const first = await this.partUrls(resume.uploadId, firstMissing(resume), resume.partCount);
          const res = await this.runMultipart(
            f,
            {
              uploadId: resume.uploadId,
              path: f.remote,
              mode: 'multipart',
              partSize: resume.partSize,
              partCount: resume.partCount,
              parts: first,
              expiresAt: '',
            },
            resume,
            sha256(),
          );
          done(res, f.size);
          return;
        } catch (err) {
          // The session expired or was aborted: its parts are gone; start over.
          if (!(err instanceof ConflictError || err instanceof NotFoundError)) throw err;
          await this.options.resume?.remove(this.api.apiUrl, f.abs, f.remote, f.size, f.mtimeMs);
        }
      }
      // Up to the API's default single-PUT threshold the digest goes into the request: a single
      // PUT has no `complete` to carry it later, and with it S3 verifies the body. Above, hashing
      // first would delay the first byte by a full read of the file.
      const known = f.size <= HASH_BEFORE_POST_MAX ? await sha256() : undefined;
      const session = await this.startUpload(f, known);
      if (session.mode === 'single') {
        await this.limit(() => this.putSingle(f, session, undefined, known));
        done({ ...base(f), status: 'uploaded', mode: 'single', ...(known ? { sha256: known } : {}) }, f.size);
        return;
      }
      done(await this.runMultipart(f, session, undefined, sha256()), f.size);
    } catch (err) {
      done(failed(f, message(err)), 0);
    }
  }

  private async partUrls(uploadId: string, from: number, partCount: number) {
    if (from > partCount) return [];
    const res = await this.api.request<{ parts: Array<{ partNumber: number; url: string }> }>(
      'GET',
      `/v1/uploads/${encodeURIComponent(uploadId)}/parts`,
      { query: { from, count: 100 }, signal: this.options.signal },
    );
    return res.parts;
  }

  private async runMultipart(
    f: LocalFile,
    session: UploadSession,
    resumed: ResumeState | undefined,
    digest: Promise<string>,
  ): Promise<FileResult> {
    const partSize = session.partSize ?? 0;
    const partCount = session.partCount ?? Math.ceil(f.size / partSize);
    const state: ResumeState = resumed ?? {
      format: 1,
      uploadId: session.uploadId,
      remote: f.remote,
      size: f.size,
      mtimeMs: f.mtimeMs,
      partSize,
      partCount,
      parts: {},
    };
    const store = this.options.resume;
    // Bytes of parts finished in an earlier run count as done for progress.
    this.addBytes(Object.keys(state.parts).reduce((n, p) => n + partBytes(f.size, partSize, Number(p)), 0));
    if (store && !resumed) await store.save(this.api.apiUrl, f.abs, state);
    let saving = Promise.resolve();
    const urls = new Map((session.parts ?? []).map((p) => [p.partNumber, p.url]));
    // URLs come in windows of 100; one in-flight fetch per window, shared by the parts that need it.
    const windows = new Map<number, Promise<void>>();
    const urlFor = async (n: number): Promise<string> => {
      const known = urls.get(n);
      if (known) return known;
      const w = Math.floor((n - 1) / 100);
      let p = windows.get(w);
      if (!p) {
        p = this.partUrls(session.uploadId, w * 100 + 1, partCount).then((parts) => {
          for (const part of parts) urls.set(part.partNumber, part.url);
        });
        windows.set(w, p);
      }
      await p;
      const url = urls.get(n);
      if (!url) throw new Error(`the API returned no URL for part ${n}`);
      return url;
    };
    // Presigned part URLs expire (STRATA_PRESIGN_EXPIRES_SECONDS after they were issued) and S3
    // then answers 403. A long upload, a slow link or a resumed run reaches parts whose URL is
    // stale: forget the window's URLs and ask the API again (which also extends the session's
    // idle expiry). Only the first part to see the stale URL refetches; the others find it replaced.
    const refresh = (n: number, stale: string) => {
      if (urls.get(n) !== stale) return;
      const w = Math.floor((n - 1) / 100);
      windows.delete(w);
      for (let k = w * 100 + 1; k <= Math.min(partCount, w * 100 + 100); k++) urls.delete(k);
    };
    digest.catch(() => {}); // awaited below; avoid an unhandled rejection meanwhile
    const missing: number[] = [];
    for (let n = 1; n <= partCount; n++) if (!state.parts[n]) missing.push(n);
    let sent = 0;
    let sentBytes = 0;
    // However the parts end (done, failed, interrupted), the resume file must hold every part that
    // finished before this returns: an interrupted run that left a save in flight would make the
    // next run send that part again (or, on exit, lose it).
    const parts = Promise.all(
      missing.map((n) =>
        this.limit(async () => {
          if (this.options.signal?.aborted)
            throw new Error('interrupted; run the same command again to resume');
          const start = (n - 1) * partSize;
          const length = partBytes(f.size, partSize, n);
          const headers = { 'content-length': String(length) };
          const body = () =>
            createReadStream(f.abs, { start, end: start + length - 1, highWaterMark: 1024 * 1024 });
          const send = async () => {
            const url = await urlFor(n);
            try {
              return await this.put(url, headers, body);
            } catch (err) {
              if (!(err instanceof PutError) || err.status !== 403) throw err;
              refresh(n, url);
              // A 403 with a URL issued just now is not expiry (wrong clock, revoked token): fail.
              return await this.put(await urlFor(n), headers, body);
            }
          };
          const etag = await withRetries(send, this.retry, this.options.signal);
          state.parts[n] = etag;
          sent++;
          sentBytes += length;
          this.addBytes(length);
          this.options.onPart?.(f, n);
          if (store) {
            const snapshot = { ...state, parts: { ...state.parts } };
            saving = saving.then(() => store.save(this.api.apiUrl, f.abs, snapshot));
          }
        }),
      ),
    );
    try {
      await parts;
    } catch (err) {
      await saving.catch(() => {}); // the part failure is the error worth reporting
      throw err;
    }
    await saving;
    const sha256 = await digest;
    const partList = [];
    for (let n = 1; n <= partCount; n++) partList.push({ partNumber: n, etag: state.parts[n] as string });
    await this.api.request('POST', `/v1/uploads/${encodeURIComponent(session.uploadId)}/complete`, {
      body: { parts: partList, sha256 },
      retry: true, // complete is idempotent server-side (a completed session answers again)
      signal: this.options.signal,
    });
    await store?.remove(this.api.apiUrl, f.abs, f.remote, f.size, f.mtimeMs);
    return {
      ...base(f),
      status: 'uploaded',
      mode: 'multipart',
      sha256,
      partsSent: sent,
      partCount,
      ...(sentBytes < f.size ? { bytesSent: sentBytes } : {}),
    };
  }
}

function partBytes(size: number, partSize: number, n: number): number {
  return Math.min(partSize, size - (n - 1) * partSize);
}

function firstMissing(s: ResumeState): number {
  for (let n = 1; n <= s.partCount; n++) if (!s.parts[n]) return n;
  return s.partCount + 1;
}

function base(f: LocalFile) {
  return { local: f.abs, remote: f.remote, size: f.size };
}

function failed(f: LocalFile, reason: string): FileResult {
  return { ...base(f), status: 'failed', reason };
}

function message(err: unknown): string {
  if (err instanceof StrataError) return err.message;
  return err instanceof Error ? err.message : String(err);
}

const TYPES: Record<string, string> = {
  txt: 'text/plain; charset=utf-8',
  md: 'text/markdown; charset=utf-8',
  csv: 'text/csv',
  json: 'application/json',
  html: 'text/html; charset=utf-8',
  js: 'text/javascript',
  css: 'text/css',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  pdf: 'application/pdf',
  parquet: 'application/vnd.apache.parquet',
  gz: 'application/gzip',
  zip: 'application/zip',
};

/** A content type from the extension; S3 and browsers treat unknown bytes as octet-stream. */
export function contentTypeOf(path: string): string {
  const ext = /\.([A-Za-z0-9]+)$/.exec(path)?.[1]?.toLowerCase();
  return (ext && TYPES[ext]) || 'application/octet-stream';
}
