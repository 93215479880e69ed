/**
 * `strata mount` as a process: config → API client → data path → metadata cache + change poller
 * → StrataFs → FUSE, plus the metrics endpoint and signal handling. Runs in the foreground
 * (systemd style) until SIGINT/SIGTERM or until the mount disappears (`strata unmount`,
 * `fusermount -u`), then unmounts and closes everything in reverse order.
 *
 * Extension point: `MountExtension` lets a tier plug in without touching this file's flow — the
 * peer tier passes `peer` (asked after a local miss, before S3) and `start`/`stop` (e.g. serve
 * blocks to other nodes once the data path exists).
 */
import { execFile } from 'node:child_process';
import { constants, existsSync, readFileSync } from 'node:fs';
import { access, mkdir, readdir, stat, statfs } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import {
  ForbiddenError,
  PreconditionFailedError,
  UnauthorizedError,
  UnavailableError,
  ValidationError,
} from '../functions/core/errors.ts';
import { ApiClient } from './api/client.ts';
import type { BlockFetcher, ObjectVersion } from './block-cache/types.ts';
import { ByDateView } from './fs/by-date-view.ts';
import { StrataFs } from './fs/strata-fs.ts';
import { type FuseMount, mountFuse } from './fuse/binding.ts';
import { perOpenDirectIo } from './fuse/native.ts';
import { ChangePoller } from './metadata/change-poller.ts';
import { httpIndexApi, type IndexApi } from './metadata/index-api.ts';
import { MetadataCache } from './metadata/metadata-cache.ts';
import { counter, histogram, mountRegistry } from './metrics.ts';
import { createDataPath, type DataPath, type FaultOptions } from './object-client/data-path.ts';
import { S3ReadError } from './object-client/errors.ts';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

export interface MountOptions {
  mountpoint: string;
  apiUrl: string;
  token: string;
  region: string;
  /** S3 endpoint override (emulators, S3-compatible stores); AWS when absent. */
  s3Endpoint?: string;
  cacheDir: string;
  cacheSizeBytes: number;
  /** Free-disk floor of the cache filesystem (`--cache-min-free`); disk-cache.ts has the default. */
  cacheMinFreeBytes?: number;
  blockSize: number;
  readAheadMaxBytes: number;
  maxS3Concurrency: number;
  /** Hot-block memory tier (0 disables it); data-path.ts carries the default and its reason. */
  memoryCacheBytes?: number;
  /** Block-file writes: 'buffered' (default) or 'direct' (O_DIRECT); data-path.ts says when each wins. */
  cacheWrites?: 'buffered' | 'direct';
  allowOther: boolean;
  /**
   * FUSE direct_io: file data bypasses the kernel page cache (opt-in, `--direct-io`). Cheaper for
   * large streaming reads — libfuse drops a file's pages at every open anyway, so the page cache only
   * costs a copy into freshly allocated pages (docs/benchmarks/peers.md, round 4) — but mmap of files
   * on the mount fails on kernels before 6.6 and small reads lose kernel read-ahead. Off by default.
   */
  directIo?: boolean;
  /**
   * Let the rebuilt fuse-native addon answer a streaming reader's reads that fall inside a block
   * already in memory, without a round trip to JavaScript (fuse/lender.ts). Default true; false
   * (`--no-lent-reads`) keeps every read in JavaScript, for comparison. No-op with the stock addon.
   */
  lentReads?: boolean;
  /** Serve /metrics on 127.0.0.1:<port> (0 = any free port); undefined = no endpoint. */
  metricsPort?: number;
  presign: boolean;
  uid: number;
  gid: number;
  /** Test/chaos hook: inject S3 faults below the retry loop (env STRATA_S3_FAULTS). */
  faults?: FaultOptions;
  extensions?: MountExtension[];
  log?: Logger;
}

export interface MountExtension {
  readonly name: string;
  /** A block tier asked after a local miss and before S3 (at most one extension may set it). */
  peer?: BlockFetcher;
  /** `presign`: this node reads S3 through presigned URLs from the API (no credentials of its own). */
  start?(ctx: { dataPath: DataPath; api: ApiClient; log: Logger; presign: boolean }): Promise<void>;
  stop?(): Promise<void>;
  /** Extra top-level sections for the /stats JSON (e.g. `{ peers: {...} }`); the core fields win. */
  stats?(): Record<string, unknown>;
}

export interface RunningMount {
  readonly mountpoint: string;
  /** Bound metrics port, when the endpoint is on. */
  readonly metricsPort?: number;
  /** Resolves once the mount has been torn down (by stop() or because it disappeared). */
  readonly done: Promise<void>;
  stop(reason: string): Promise<void>;
}

export type Logger = (
  level: 'info' | 'warn' | 'error',
  msg: string,
  fields?: Record<string, unknown>,
) => void;

/** JSON lines on stderr, one object per event; never includes the token. */
export const jsonLogger: Logger = (level, msg, fields = {}) => {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);
};

/**
 * Default cache directory: /var/cache/strata for root (FHS: regenerable data, survives reboots,
 * where a systemd unit's CacheDirectory= points), else $XDG_CACHE_HOME/strata or ~/.cache/strata.
 */
export function defaultCacheDir(env = process.env, uid = process.getuid?.() ?? 0): string {
  if (uid === 0) return '/var/cache/strata';
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'strata');
}

/**
 * Default cache size: half of the cache filesystem, capped at 100 GiB. Compute nodes put the cache
 * on an instance-store NVMe that exists for this purpose; on a shared root disk half leaves room for
 * everything else, and the data path also keeps a free-disk floor.
 */
export async function defaultCacheSize(cacheDir: string): Promise<number> {
  const dir = await nearestExisting(cacheDir);
  const s = await statfs(dir);
  return Math.max(256 * MiB, Math.min(100 * GiB, Math.floor((s.blocks * s.bsize) / 2)));
}

async function nearestExisting(path: string): Promise<string> {
  let p = resolve(path);
  while (!existsSync(p)) p = resolve(p, '..');
  return p;
}

/** Parses `512M`, `10GiB`, `1g`, `4096` into bytes. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  if (!m) throw new Error(`cannot parse size ${JSON.stringify(text)}: use e.g. 512M, 8MiB, 20G`);
  const unit = { '': 1, k: 1024, m: MiB, g: GiB, t: 1024 * GiB }[(m[2] ?? '').toLowerCase()] as number;
  return Math.round(Number(m[1]) * unit);
}

/** True when `mountpoint` appears in the mount table. */
export function isMounted(mountpoint: string): boolean {
  const target = resolve(mountpoint).replace(/ /g, '\\040');
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .some((line) => line.split(' ')[4] === target);
  } catch {
    return false;
  }
}

/** Lazily detaches a mount (works for a dead FUSE server too). */
export async function forceUnmount(mountpoint: string): Promise<void> {
  try {
    await run('fusermount', ['-uz', mountpoint]);
  } catch {
    await run('fusermount3', ['-uz', mountpoint]);
  }
}

/**
 * A mount left behind by a killed process answers ENOTCONN; detach it so this mount can take its
 * place. A mount still served by a live process is refused with the way out in the message.
 */
export async function recoverStaleMount(mountpoint: string, log: Logger): Promise<void> {
  try {
    if (!(await stat(mountpoint)).isDirectory())
      throw new ValidationError(
        `mountpoint ${mountpoint} is not a directory; mount on an empty directory (mkdir -p /mnt/strata)`,
      );
  } catch (err) {
    if (err instanceof ValidationError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTCONN' || code === 'ENXIO' || code === 'EIO') {
      log('warn', 'recovering a stale mount left by a previous process', { mountpoint, code });
      await forceUnmount(mountpoint);
      return;
    }
    if (code === 'ENOENT')
      throw new Error(`mountpoint ${mountpoint} does not exist; create it with mkdir -p`);
    throw err;
  }
  if (isMounted(mountpoint)) {
    throw new Error(
      `${mountpoint} is already mounted by a running process; run \`strata unmount ${mountpoint}\` first`,
    );
  }
  // libfuse 2 refuses a non-empty mountpoint with "fuse failed" and advice about an option
  // (`nonempty`) strata does not take; hiding files under a mount is rarely what anyone wants.
  const entries = await readdir(mountpoint);
  if (entries.length > 0)
    throw new ValidationError(
      `mountpoint ${mountpoint} is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', …' : ''}); mount on an empty directory`,
    );
}

/**
 * Creates the cache directory and checks that this user can write it, before anything is mounted:
 * otherwise the first cached block fails deep in the data path with a bare EACCES.
 */
export async function prepareCacheDir(dir: string): Promise<void> {
  try {
    await makeDirs(resolve(dir));
    await access(dir, constants.W_OK);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ValidationError(
      `cannot use ${dir} as the block cache (${e.code ?? e.message}): pass --cache-dir with a directory this user can create and write${(process.getuid?.() ?? 0) !== 0 ? `, e.g. ${join(homedir(), '.cache', 'strata')}` : ''}, or fix its permissions`,
      { cause: err },
    );
  }
}

/**
 * mkdir -p, one level at a time. Not `mkdir(dir, { recursive: true })`: Node's recursive mkdir
 * never returns under a pseudo file system that answers ENOENT to mkdir of a name whose parent
 * exists (`--cache-dir /proc/x` hung `strata mount` for ever); here that ENOENT is the error.
 */
async function makeDirs(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    const st = await stat(d).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (st) break;
    missing.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const d of missing) {
    await mkdir(d).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  }
}

export async function startMount(o: MountOptions): Promise<RunningMount> {
  const log = o.log ?? jsonLogger;
  const mountpoint = resolve(o.mountpoint);
  await recoverStaleMount(mountpoint, log);
  await prepareCacheDir(o.cacheDir);

  const client = new ApiClient({ apiUrl: o.apiUrl, token: o.token });
  const api: IndexApi = httpIndexApi(client);
  // 64 subdirectories listed ahead per listed directory (4 at a time): a `find`/`ls -R` over a
  // wide tree overlaps its readdirs' API round trips; wider dirs are walked at API speed beyond it.
  const meta = new MetadataCache(api, { listAheadDirs: 64 });
  const byDate = new ByDateView(api);
  const extensions = o.extensions ?? [];
  const peer = extensions.find((e) => e.peer)?.peer;

  const dataPath = await createDataPath({
    cacheDir: o.cacheDir,
    cacheSizeBytes: o.cacheSizeBytes,
    ...(o.cacheMinFreeBytes !== undefined ? { minFreeBytes: o.cacheMinFreeBytes } : {}),
    blockSize: o.blockSize,
    log,
    readAheadMaxBytes: o.readAheadMaxBytes,
    maxS3Concurrency: o.maxS3Concurrency,
    ...(o.memoryCacheBytes !== undefined ? { memoryCacheBytes: o.memoryCacheBytes } : {}),
    ...(o.cacheWrites ? { cacheWrites: o.cacheWrites } : {}),
    region: o.region,
    ...(o.s3Endpoint ? { endpoint: o.s3Endpoint } : {}),
    ...(o.presign ? { presign: (v: ObjectVersion) => presignAgain(meta, v) } : {}),
    ...(peer ? { peer } : {}),
    ...(o.faults ? { faults: o.faults } : {}),
    metrics: mountRegistry,
  });
  const cleanup: Array<[string, () => Promise<unknown> | unknown]> = [
    ['data path', () => dataPath.close()],
    ['api client', () => client.close()],
  ];
  const closeAll = async () => {
    for (const [what, fn] of cleanup.reverse()) {
      try {
        await fn();
      } catch (err) {
        log('warn', `closing the ${what} failed`, { error: (err as Error).message });
      }
    }
  };

  try {
    const outage = apiOutage(o.apiUrl, log);
    const refused = tokenRefused(o.apiUrl, log);
    // The poller retries every second: a failure that repeats is said once, not once a second.
    let lastPollError: string | undefined;
    const poller = new ChangePoller(api, [meta, byDate], {
      onError: (err) => {
        if (err instanceof UnavailableError) return outage.failed(err);
        if (err instanceof UnauthorizedError || err instanceof ForbiddenError) return refused.failed(err);
        const message = (err as Error).message;
        if (message !== lastPollError) log('warn', 'change feed poll failed; retrying', { error: message });
        lastPollError = message;
      },
      onPoll: (seq) => {
        lastPollError = undefined;
        outage.ended({ changeSeq: seq });
        refused.ended({ changeSeq: seq });
      },
    });
    await poller.start();
    cleanup.push(['change poller', () => poller.stop()]);

    for (const ext of extensions) {
      await ext.start?.({ dataPath, api: client, log, presign: o.presign });
      if (ext.stop) cleanup.push([ext.name, () => ext.stop?.()]);
    }

    // Per-open direct_io keeps two versions of one path out of each other's pages (strata-fs.ts).
    // Moot with --direct-io (no handle uses the page cache); without the patched addon, said once.
    const perOpen = !o.directIo && perOpenDirectIo;
    if (!o.directIo && !perOpenDirectIo) {
      log(
        'warn',
        "fuse-native was not rebuilt with per-open direct_io (scripts/build-fuse-native.mjs: run `npm rebuild fuse-native && node scripts/build-fuse-native.mjs` with a C compiler installed): handles open on one file across an overwrite may read each other's version from the page cache; mount with --direct-io where files are overwritten while open",
      );
    }
    const fs = new StrataFs({
      meta,
      byDate,
      data: dataPath,
      uid: o.uid,
      gid: o.gid,
      presign: o.presign,
      perOpenDirectIo: perOpen,
    });
    cleanup.push(['open files', () => fs.close()]);
    const ops = opMetrics();
    const s3Down = s3Outage(o.s3Endpoint ?? `the AWS S3 endpoint of ${o.region}`, log);
    let s3ok = 0;
    const fuse: FuseMount = await mountFuse(mountpoint, fs, {
      allowOther: o.allowOther,
      ...(o.directIo ? { extraOptions: ['direct_io'] } : {}),
      lendBlocks: o.lentReads !== false,
      observe: ops,
      onError: (op, path, err) => {
        // An unreachable API fails every uncached lookup: one line for the outage, not one per op.
        if (err instanceof UnavailableError) return outage.failed(err);
        // A refused token fails every uncached lookup too: the poller's one line covers them.
        if (err instanceof UnauthorizedError) return refused.failed(err);
        if (err instanceof S3ReadError && err.status === undefined) {
          s3ok = dataPath.stats().s3.ok;
          return s3Down.failed(err);
        }
        log('error', `${op} failed`, { op, path, error: (err as Error).message, kind: (err as Error).name });
      },
    });
    cleanup.push(['FUSE mount', () => (isMounted(mountpoint) ? fuse.unmount() : undefined)]);

    const metrics =
      o.metricsPort === undefined
        ? undefined
        : await serveMetrics(o.metricsPort, () => ({
            ...Object.assign({}, ...extensions.map((e) => e.stats?.() ?? {})),
            dataPath: dataPath.stats(),
            metadata: meta.stats(),
            byDate: byDate.stats(),
            openFiles: fs.openHandles,
            lentBlocks: fuse.lending() ?? null,
            changeSeq: poller.position,
            process: processStats(),
          }));
    if (metrics) cleanup.push(['metrics server', () => new Promise((r) => metrics.server.close(r))]);

    let stopping: Promise<void> | undefined;
    let finished!: () => void;
    const done = new Promise<void>((r) => {
      finished = r;
    });
    const stop = (reason: string) => {
      stopping ??= (async () => {
        clearInterval(watch);
        log('info', 'unmounting', { mountpoint, reason });
        await closeAll();
        log('info', 'unmounted', { mountpoint });
        finished();
      })();
      return stopping;
    };
    // `strata unmount` / `fusermount -u` remove the mount from outside: notice and exit cleanly.
    const watch = setInterval(() => {
      if (!isMounted(mountpoint)) void stop('the mount was removed externally');
      // A GET that succeeded after the last failed read: S3 is back.
      if (s3Down.active && dataPath.stats().s3.ok > s3ok) s3Down.ended();
    }, 1000);
    watch.unref();

    log('info', 'mounted', {
      mountpoint,
      apiUrl: o.apiUrl,
      cacheDir: o.cacheDir,
      cacheSizeBytes: o.cacheSizeBytes,
      blockSize: o.blockSize,
      presign: o.presign,
      metricsPort: metrics?.port,
      changeSeq: poller.position,
    });
    return { mountpoint, ...(metrics ? { metricsPort: metrics.port } : {}), done, stop };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** Runs a mount until SIGINT/SIGTERM (or external unmount); what `strata mount` calls. */
export async function runMountForeground(o: MountOptions): Promise<void> {
  const mount = await startMount(o);
  const onSignal = (sig: NodeJS.Signals) => void mount.stop(sig);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  await mount.done;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  // Everything is closed. After an external unmount (`strata unmount`, `fusermount -u`) the
  // fuse-native loop thread cannot be released through its API (its close() first runs
  // `fusermount -uz`, which fails on a mount that is already gone, and then skips the native
  // teardown), and that thread keeps the event loop alive forever. Exit once nothing else is left
  // to do; the unref'd timer never delays a process that would exit on its own.
  setTimeout(() => process.exit(), 1000).unref();
}

/** On-prem mode: re-sign a URL for a version whose URL expired, from the API (never locally). */
async function presignAgain(
  meta: MetadataCache,
  v: ObjectVersion,
): Promise<{ url: string; expiresAt: number }> {
  if (v.url && v.urlExpiresAt && v.urlExpiresAt - Date.now() > 60_000)
    return { url: v.url, expiresAt: v.urlExpiresAt };
  const path = meta.pathOf(v.key);
  if (!path)
    throw new PreconditionFailedError(`cannot re-sign ${v.key}: its path is unknown; reopen the file`);
  const r = await meta.resolveFile(path, true);
  if (r.etag !== v.etag || !r.url || !r.urlExpiresAt) {
    throw new PreconditionFailedError(`${path} changed since it was opened (etag ${v.etag} → ${r.etag})`);
  }
  return { url: r.url, expiresAt: r.urlExpiresAt };
}

/**
 * An outage of something the mount depends on (the API, S3) is one episode, logged once when it
 * starts (with what still works and what to check) and once when it ends — not once per failed
 * operation: a busy node would otherwise write a line per lookup or per read, for as long as the
 * outage lasts. `ended` is called with fields for the closing line (how it caught up).
 */
function outageLog(
  log: Logger,
  fields: Record<string, unknown>,
  startMsg: string | ((err: unknown) => string),
  endMsg: string,
) {
  let since = 0;
  let failures = 0;
  return {
    get active(): boolean {
      return since > 0;
    },
    failed(err: unknown): void {
      failures++;
      if (since) return;
      since = Date.now();
      const msg = typeof startMsg === 'string' ? startMsg : startMsg(err);
      log('error', msg, { ...fields, error: (err as Error).message });
    },
    ended(extra: Record<string, unknown> = {}): void {
      if (!since) return;
      log('info', endMsg, {
        ...fields,
        outageSeconds: Math.round((Date.now() - since) / 1000),
        failedRequests: failures,
        ...extra,
      });
      since = 0;
      failures = 0;
    },
  };
}

/** The API: lookups fail with EIO meanwhile (UnavailableError, errno.ts); the poller ends it. */
function apiOutage(apiUrl: string, log: Logger) {
  return outageLog(
    log,
    { apiUrl },
    // ApiClient: a connection that failed is an UnavailableError with a cause; an HTTP 5xx answer
    // (the API's database down, a statement timeout, a server bug) is one without: the API is
    // reachable then, and the place to look is its logs, not this node's network.
    (err) =>
      (err as Error).cause === undefined
        ? `the Strata API at ${apiUrl} answers with server errors (the error and its request id are below); cached metadata and cached blocks keep serving, uncached lookups fail with EIO until it answers normally again (retried every second; no remount needed). Check the API's logs and its database (docs/operations.md)`
        : `the Strata API at ${apiUrl} is unreachable; cached metadata and cached blocks keep serving, uncached lookups fail with EIO until it answers again (retried every second; no remount needed). Check that the API is up and reachable from this node`,
    'the Strata API answers again; the change feed caught up',
  );
}

/**
 * The API refusing this mount's token (revoked, expired, or lacking the read scope): every request
 * fails the same way until the mount runs with another token, so it is said once, with the fix.
 * Lookups fail with EACCES meanwhile (errno.ts); a poll that gets through ends it.
 */
function tokenRefused(apiUrl: string, log: Logger) {
  return outageLog(
    log,
    { apiUrl },
    `the Strata API at ${apiUrl} rejects this mount's token (the reason is below): uncached lookups fail with EACCES and changes are not followed until it is accepted again. Create a new token with \`strata token create\` (read scope) and restart the mount with it (--token or STRATA_TOKEN)`,
    `the Strata API at ${apiUrl} accepts this mount's token again`,
  );
}

/**
 * S3 not answering at all (no HTTP status: refused, reset, timed out): reads of blocks not cached
 * fail with EIO after the retry budget; the first successful GET afterwards ends the episode.
 */
function s3Outage(endpoint: string, log: Logger) {
  return outageLog(
    log,
    { endpoint },
    `S3 at ${endpoint} is unreachable: reads of blocks not in the cache fail with EIO after the retry budget; cached blocks keep serving. Check the endpoint, the network path to it and the node's credentials (the first error is below)`,
    `S3 at ${endpoint} answers again`,
  );
}

/**
 * The mount process's own memory, for /stats: a mount runs for weeks, and heap or external
 * memory that grows with the number of operations is a leak (bench/mount/soak.ts samples these).
 */
function processStats(): Record<string, number> {
  const m = process.memoryUsage();
  return {
    rssBytes: m.rss,
    heapUsedBytes: m.heapUsed,
    heapTotalBytes: m.heapTotal,
    externalBytes: m.external,
    arrayBuffersBytes: m.arrayBuffers,
    uptimeSeconds: Math.round(process.uptime()),
  };
}

function opMetrics() {
  const latency = histogram(
    mountRegistry,
    'strata_fuse_op_duration_seconds',
    'FUSE operation latency by op',
    // 50 µs … 10 s: cache hits land in the first buckets, S3 retries in the last.
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    ['op'] as const,
  );
  const errors = counter(
    mountRegistry,
    'strata_fuse_op_errors_total',
    'FUSE operations answered with an errno',
    ['op', 'errno'] as const,
  );
  // Labelled children resolved once per op name: prom-client's label lookup on every observe was
  // a measurable share of a warm 128 KiB read.
  const byOp = new Map<string, { observe(v: number): void }>();
  return (op: string, seconds: number, errno: number) => {
    let h = byOp.get(op);
    if (!h) {
      h = latency.labels({ op });
      byOp.set(op, h);
    }
    h.observe(seconds);
    if (errno < 0) errors.inc({ op, errno: String(-errno) });
  };
}

export async function serveMetrics(
  port: number,
  stats: () => unknown,
): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    if (req.url === '/metrics') {
      mountRegistry.metrics().then(
        (body) => {
          res.writeHead(200, { 'content-type': mountRegistry.contentType });
          res.end(body);
        },
        (err) => {
          res.writeHead(500);
          res.end(String(err));
        },
      );
    } else if (req.url === '/stats') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(stats()));
    } else {
      res.writeHead(404);
      res.end('try /metrics or /stats\n');
    }
  });
  await new Promise<void>((r, j) => server.once('error', j).listen(port, '127.0.0.1', () => r())).catch(
    (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EADDRINUSE') throw err;
      throw new ValidationError(
        `--metrics-port ${port} is already in use on 127.0.0.1; pick another port, or 0 for any free one (logged at start)`,
        { cause: err },
      );
    },
  );
  const address = server.address();
  return { server, port: typeof address === 'object' && address ? address.port : port };
}
