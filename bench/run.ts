/**
 * `npm run bench`: Strata's mount against rclone mount and s3fs-fuse on the same data, the same
 * local S3 and the same proxies, next to this machine's ceilings, in one run (issue 9). Writes raw
 * samples to bench/results/, charts to docs/benchmarks/*.svg and regenerates docs/benchmarks.md.
 *
 *   npm run bench                     quick: 256 MiB file, 2,000-file tree, 3 runs (< 10 min on 2 cores)
 *   npm run bench -- --full           1 GiB file, 10,000-file tree, 3 runs
 *   npm run bench -- --report-only bench/results/<file>.json   regenerate the docs from saved samples
 *
 * Needs root (FUSE mounts, dropping the page cache), /dev/fuse, libfuse2 + fuse3, rclone and s3fs
 * (installed from Debian when missing). Everything it starts — the stack (its own process: a FUSE
 * client reading from a server in the same event loop would deadlock), mounts, proxies — is
 * registered for cleanup, which also runs on SIGINT/SIGTERM and on a crash.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import type { DevJson } from '../mount-client/cli/config.ts';
import { pageCacheRead, rawRangedGets, startFuseCeiling } from './compare/ceilings.ts';
import { CleanupRegistry } from './compare/cleanup.ts';
import { startLatencyProxy } from './compare/latency-proxy.ts';
import {
  describeMachine,
  dropCaches,
  randomReads,
  sequentialRead,
  sh,
  shq,
  timed,
  waitVisible,
} from './compare/measure.ts';
import {
  type AreaDoc,
  type BenchResults,
  buildCharts,
  CEILING,
  cutoffOf,
  emptyResults,
  headline,
  type Profile,
  record,
  renderMarkdown,
  type Tool,
} from './compare/report.ts';
import { mountStrata, NODE, ROOT, type StrataEndpoints, strataUpload } from './compare/strata.ts';
import {
  type MountedTool,
  mountRclone,
  mountS3fs,
  type S3Target,
  toolEnvFor,
  writeRcloneConfig,
} from './compare/tools.ts';

const MiB = 1024 * 1024;
/** S3 Standard time-to-first-byte as measured from EC2 in-region (issue 9): 15 ms ± 5. */
const S3_TTFB_MS = 15;
const S3_JITTER_MS = 5;
/** API Gateway + a warm Lambda adds about 10 ms per call. */
const API_TTFB_MS = 10;
const API_JITTER_MS = 3;
/** Duration of the random-read loop: long enough for thousands of ops, short for the 10-min budget. */
const RANDOM_SECONDS = 2;

const { values: args } = parseArgs({
  options: {
    full: { type: 'boolean', default: false },
    runs: { type: 'string' },
    'size-mib': { type: 'string' },
    'tree-files': { type: 'string' },
    profiles: { type: 'string', default: 'local,s3like' },
    tools: { type: 'string', default: 'strata,rclone,s3fs' },
    'no-upload': { type: 'boolean', default: false },
    'report-only': { type: 'string' },
    'no-docs': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    cutoff: { type: 'string' },
    'upload-runs': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (args.help) {
  process.stdout.write(
    `${readFileSync(new URL(import.meta.url), 'utf8')
      .split('*/')[0]
      ?.replace(
        /^\/\*\*|^ \* ?/gm,
        '',
      )}\nOptions: --full, --runs N, --size-mib N, --tree-files N, --profiles local,s3like, --tools strata,rclone,s3fs, --cutoff SECONDS, --upload-runs N, --no-upload, --no-docs, --keep (keep the work dir: logs, caches), --report-only <json>\n`,
  );
  process.exit(0);
}

const log = (line: string) =>
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

// ---------------------------------------------------------------------------------------------
// Report generation (also the whole job of --report-only)

function areaDocs(): AreaDoc[] {
  const dir = join(ROOT, 'docs/benchmarks');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => ({ area: f.replace(/\.md$/, ''), content: readFileSync(join(dir, f), 'utf8') }));
}

function writeDocs(results: BenchResults, jsonPath: string): void {
  const charts = buildCharts(results);
  mkdirSync(join(ROOT, 'docs/benchmarks'), { recursive: true });
  for (const c of charts) writeFileSync(join(ROOT, 'docs', c.file), c.svg);
  writeFileSync(join(ROOT, 'docs/benchmarks.md'), renderMarkdown(results, charts, areaDocs(), jsonPath));
  log(`wrote docs/benchmarks.md and ${charts.length} charts`);
}

if (args['report-only']) {
  const results = JSON.parse(readFileSync(args['report-only'], 'utf8')) as BenchResults;
  writeDocs(results, relative(ROOT, args['report-only']));
  for (const l of headline(results)) process.stdout.write(`${l}\n`);
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// Setup

const full = args.full;
const runs = Number(args.runs ?? 3);
const sizeMiB = Number(args['size-mib'] ?? (full ? 1024 : 256));
const treeFiles = Number(args['tree-files'] ?? (full ? 10_000 : 1_000));
/**
 * Time limit per metadata operation (find, ls -lR, stat of every file, new-file visibility). s3fs
 * HEADs objects one by one, which with 15 ms per request takes minutes over a large tree; past the
 * limit the result is reported as "> limit" and that operation is not repeated in later runs.
 */
const cutoffSeconds = Number(args.cutoff ?? (full ? 180 : 15));
/** Upload runs: each run writes the whole data set again, so quick mode does one per profile. */
const uploadRuns = Number(args['upload-runs'] ?? (full ? runs : 1));
const profiles = (args.profiles ?? '').split(',').filter(Boolean) as Profile[];
let tools = (args.tools ?? '').split(',').filter(Boolean) as Tool[];
for (const [name, v] of [
  ['--runs', runs],
  ['--size-mib', sizeMiB],
  ['--tree-files', treeFiles],
  ['--cutoff', cutoffSeconds],
  ['--upload-runs', uploadRuns],
] as const)
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${v}`);

const benchStart = Date.now();
const reg = new CleanupRegistry();
reg.installSignalHandlers(log);
const crash = (err: unknown) => {
  log(`crashed: ${(err as Error)?.stack ?? String(err)}`);
  void reg.runAll().finally(() => process.exit(1));
};
process.on('uncaughtException', crash);
process.on('unhandledRejection', crash);

const bigBytes = sizeMiB * MiB;
const work = mkdtempSync(join(tmpdir(), 'strata-bench-compare-'));
// Embedded PostgreSQL runs as the postgres user and must traverse into the stack's state dir.
chmodSync(work, 0o755);
reg.add('work dir', () => {
  if (args.keep) log(`kept ${work} (--keep)`);
  else rmSync(work, { recursive: true, force: true });
});
const commit = (await sh('git rev-parse --short HEAD').catch(() => 'unknown')).trim();
const cmdLine = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;

const results = emptyResults({
  date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
  mode: full ? 'full' : 'quick',
  runs,
  bigFileMiB: sizeMiB,
  treeFiles,
  treeDirs: 0,
  treeBytes: 0,
  machine: await describeMachine(NODE),
  dropCaches: false,
  commit,
  command: cmdLine,
  profiles: {
    local:
      'every tool talks to the emulator and the API directly (one exception: the presigned URLs `strata upload` receives point at the S3 proxy, here adding no delay).',
    s3like: `every S3 request of every tool (and of the stack's indexer) passes a proxy holding the response ${S3_TTFB_MS} ± ${S3_JITTER_MS} ms (S3 Standard's time to first byte); every API request one holding it ${API_TTFB_MS} ± ${API_JITTER_MS} ms (API Gateway + warm Lambda). Bodies stream through at full speed.`,
  },
  toolCommands: {
    strata:
      'strata mount <mnt> --cache-dir <fresh dir> --cache-size <2×file+512>M --s3-endpoint <S3> --api-url <API> (defaults: 8 MiB blocks, read-ahead up to 64 MiB)',
    rclone:
      'rclone mount strata:<bucket>/data <mnt> --vfs-cache-mode full --use-server-modtime --read-only --dir-cache-time 1s --cache-dir <fresh dir>',
    s3fs: 's3fs <bucket>:/data <mnt> -o use_path_request_style,use_cache=<fresh dir>,ro,stat_cache_expire=1',
    upload:
      'strata upload <dir|file> --to <remote> (16 concurrent PUTs) vs rclone copy <dir|file> strata:<bucket>/scratch/… --transfers 16 --checkers 16 --s3-upload-concurrency 16 --s3-chunk-size 8M --s3-upload-cutoff 8M',
  },
  notes: [
    'rclone and s3fs cache directory listings for 1 s (`--dir-cache-time 1s`, `stat_cache_expire=1`) so a new file can become visible within the 2 s target; their defaults (5 min, 15 min) would make warm metadata faster and visibility minutes slower.',
    'rclone 1.60 cannot upload files over 8 MiB to this emulator: its multipart upload ends in `InvalidPart` at CompleteMultipartUpload (reproduced against a bare fauxqs 2.4.1, with 1 or 4 concurrent parts and with `--s3-disable-checksum`), and fauxqs refuses single PUTs over 11 MiB — so the big-file upload has no rclone figure; the tree (files ≤ 1 MiB) uploads fine.',
    'The emulator (fauxqs) and all clients share the 2 cores, so throughput figures are bounded by CPU, not the network; compare ratios within one run.',
  ],
});

function fail(profile: Profile | 'setup', tool: string, step: string, err: unknown): void {
  const msg = (err as Error)?.message ?? String(err);
  log(`FAILED ${profile}/${tool}/${step}: ${msg}`);
  results.failures.push({ profile, tool, step, error: msg.slice(0, 500) });
}

/** Installs rclone/s3fs from Debian when missing (issue 9); a tool that cannot be had is dropped. */
async function ensureTools(): Promise<void> {
  for (const [tool, pkg] of [
    ['rclone', 'rclone'],
    ['s3fs', 's3fs'],
  ] as const) {
    if (!tools.includes(tool)) continue;
    const present = await sh(`command -v ${tool}`).then(
      () => true,
      () => false,
    );
    if (present) continue;
    log(`${tool} missing: apt-get install -y ${pkg}`);
    try {
      await sh(
        `DEBIAN_FRONTEND=noninteractive apt-get install -y ${pkg} || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${pkg})`,
        600_000,
      );
    } catch (err) {
      fail('setup', tool, 'install', err);
      tools = tools.filter((t) => t !== tool);
    }
  }
}

interface Dataset {
  bigFile: string;
  treeDir: string;
  treePaths: string[];
  listFile: string;
}

/** A tree of mixed sizes (mostly small, like source/data dirs) in nested dirs, and one big file. */
function makeDataset(): Dataset {
  const data = join(work, 'data');
  const treeDir = join(data, 'tree');
  const bigDir = join(data, 'big');
  mkdirSync(bigDir, { recursive: true });
  const bigFile = join(bigDir, 'big.bin');
  writeFileSync(bigFile, randomBytes(bigBytes));
  // 10 top dirs × 10 subdirs: ~1% of files one level up, the rest in the leaves.
  const treePaths: string[] = [];
  const dirs = new Set<string>();
  let bytes = 0;
  let seed = 42;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  for (let i = 0; i < treeFiles; i++) {
    const top = `d${String(i % 10).padStart(2, '0')}`;
    const rel =
      i % 97 === 0
        ? `${top}/f${i}.dat`
        : `${top}/e${String(Math.floor(i / 10) % 10).padStart(2, '0')}/f${i}.dat`;
    const r = rand();
    // 80% 0.5–8 KiB, 18% 8–64 KiB, 2% 64 KiB–1 MiB.
    const size =
      r < 0.8
        ? 512 + Math.floor(rand() * 7.5 * 1024)
        : r < 0.98
          ? 8192 + Math.floor(rand() * 56 * 1024)
          : 65536 + Math.floor(rand() * 960 * 1024);
    const full = join(treeDir, rel);
    const dir = full.slice(0, full.lastIndexOf('/'));
    if (!dirs.has(dir)) {
      mkdirSync(dir, { recursive: true });
      dirs.add(dir);
    }
    writeFileSync(full, randomBytes(size));
    treePaths.push(`tree/${rel}`);
    bytes += size;
  }
  results.meta.treeDirs = dirs.size + 1;
  results.meta.treeBytes = bytes;
  const listFile = join(work, 'tree-files.txt');
  writeFileSync(listFile, `${treePaths.map((p) => `bench/${p}`).join('\n')}\n`);
  return { bigFile, treeDir, treePaths, listFile };
}

interface Stack {
  dev: DevJson;
  drain(): Promise<void>;
}

async function startStackProcess(publicS3: string): Promise<Stack> {
  const stateDir = join(work, 'stack');
  const child: ChildProcess = spawn(
    NODE,
    ['--import', 'tsx', join(ROOT, 'bench/compare/stack-runner.ts'), stateDir, publicS3],
    {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  const stackLog = join(work, 'stack.log');
  child.stderr?.on('data', (d: Buffer) => writeFileSync(stackLog, d, { flag: 'a' }));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  reg.add('local stack', async () => {
    if (child.exitCode !== null) return;
    child.stdin?.end();
    const done = await Promise.race([
      exited.then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), 30_000)),
    ]);
    if (!done) child.kill('SIGKILL');
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const waiters: Array<(msg: Record<string, unknown>) => void> = [];
  lines.on('line', (line) => {
    try {
      const msg = JSON.parse(line) as Record<string, unknown>;
      waiters.shift()?.(msg);
    } catch {
      // not a protocol line
    }
  });
  const next = () =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      waiters.push(resolve);
      void exited.then(() =>
        reject(
          new Error(
            `the stack process exited; see ${stackLog}: ${existsSync(stackLog) ? readFileSync(stackLog, 'utf8').slice(-600) : ''}`,
          ),
        ),
      );
    });
  const ready = await next();
  const dev = ready.ready as DevJson;
  return {
    dev,
    drain: async () => {
      const p = next();
      child.stdin?.write('drain\n');
      const msg = await p;
      if (msg.drainError) throw new Error(`indexer did not catch up: ${msg.drainError}`);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Main

log(
  `work dir ${work}; ${sizeMiB} MiB file, ${treeFiles} files, ${runs} runs, profiles ${profiles.join(',')}, tools ${tools.join(',')}`,
);
await ensureTools();
results.meta.dropCaches = await dropCaches();
const ds = makeDataset();
log(
  `dataset: ${(results.meta.treeBytes / MiB).toFixed(1)} MiB in ${treeFiles} files, ${results.meta.treeDirs} dirs`,
);

const s3Proxy = await startLatencyProxy({ ttfbMs: 0, jitterMs: 0 });
reg.add('S3 proxy', () => s3Proxy.close());
const apiProxy = await startLatencyProxy({ ttfbMs: 0, jitterMs: 0 });
reg.add('API proxy', () => apiProxy.close());
const stack = await startStackProcess(s3Proxy.url);
s3Proxy.setTarget(stack.dev.s3Endpoint as string);
apiProxy.setTarget(stack.dev.apiUrl);
const CREDS = { accessKeyId: 'strata-local', secretAccessKey: 'strata-local-secret' };
log(`stack up: API ${stack.dev.apiUrl}, S3 ${stack.dev.s3Endpoint}`);

function endpoints(profile: Profile): { strata: StrataEndpoints; s3: S3Target } {
  const s3Endpoint = profile === 'local' ? (stack.dev.s3Endpoint as string) : s3Proxy.url;
  const apiUrl = profile === 'local' ? stack.dev.apiUrl : apiProxy.url;
  return {
    strata: { apiUrl, token: stack.dev.token, s3Endpoint, region: stack.dev.region, ...CREDS },
    s3: {
      endpoint: s3Endpoint,
      bucket: stack.dev.bucket,
      prefix: stack.dev.dataPrefix,
      region: stack.dev.region,
      ...CREDS,
    },
  };
}

function setProfile(profile: Profile): void {
  if (profile === 's3like') {
    s3Proxy.setLatency(S3_TTFB_MS, S3_JITTER_MS);
    apiProxy.setLatency(API_TTFB_MS, API_JITTER_MS);
  } else {
    s3Proxy.setLatency(0, 0);
    apiProxy.setLatency(0, 0);
  }
}

// Load the data once; every tool mounts the same prefix.
setProfile('local');
{
  const ep = endpoints('local').strata;
  const t = await strataUpload(ep, ds.treeDir, '/bench');
  const b = await strataUpload(ep, ds.bigFile, '/bench/big');
  const seed = join(work, 'seed.txt');
  writeFileSync(seed, 'seed\n');
  await strataUpload(ep, seed, '/bench/visible');
  await stack.drain();
  log(`loaded: tree in ${t.seconds.toFixed(1)} s, big file in ${b.seconds.toFixed(1)} s; index drained`);
}
const bigKey = `${stack.dev.dataPrefix}bench/big/big.bin`;
const mntRoot = join(work, 'mnt');

async function mountTool(
  tool: Tool,
  profile: Profile,
  dir: string,
): Promise<{ m: MountedTool; done: () => Promise<void> }> {
  const ep = endpoints(profile);
  const mnt = join(mntRoot, tool);
  const m =
    tool === 'strata'
      ? await mountStrata(ep.strata, mnt, dir, 2 * sizeMiB + 512)
      : tool === 'rclone'
        ? await mountRclone(ep.s3, mnt, dir)
        : await mountS3fs(ep.s3, mnt, dir);
  const done = reg.add(`${tool} mount ${mnt}`, () => m.unmount());
  return { m, done };
}

async function expectCount(what: string, stdout: string, expected: number): Promise<void> {
  const n = Number(stdout.trim());
  if (n !== expected) throw new Error(`${what} saw ${n} entries, expected ${expected}`);
}

/** One tool, one profile, one run: four mount sessions, cold ones on a fresh cache. */
async function measureTool(tool: Tool, profile: Profile, run: number): Promise<void> {
  const rec = (metric: string, v: number) => record(results, profile, tool, metric, v);
  const step = async (name: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      fail(profile, tool, `${name} (run ${run})`, err);
    }
  };
  const session = async (
    label: string,
    fresh: boolean,
    dir: string,
    body: (mnt: string) => Promise<void>,
  ) => {
    if (fresh) {
      rmSync(dir, { recursive: true, force: true });
      await dropCaches();
    }
    mkdirSync(dir, { recursive: true });
    const { m, done } = await mountTool(tool, profile, dir);
    try {
      await body(m.mountpoint);
    } finally {
      await done().catch((err) => fail(profile, tool, `unmount after ${label}`, err));
    }
  };
  /** A metadata operation under the time limit; `timeout` exits 124 when it cuts one off. */
  const metaOp = async (metric: string, cmd: string, what: string) => {
    if (cutoffOf(results, profile, tool, metric)) return; // cut off in an earlier run
    try {
      const r = await timed(`set -o pipefail; timeout ${cutoffSeconds} ${cmd}`, (cutoffSeconds + 60) * 1000);
      await expectCount(what, r.stdout, treeFiles);
      rec(metric, r.seconds);
    } catch (err) {
      if ((err as Error & { cause?: { code?: number } }).cause?.code !== 124) throw err;
      results.cutoffs?.push({ profile, tool, metric, seconds: cutoffSeconds });
      log(`  ${tool} ${metric}: cut off after ${cutoffSeconds} s`);
    }
  };
  const base = join(work, 'tools', `${tool}-${profile}-${run}`);
  const tree = (mnt: string) => shq(join(mnt, 'bench/tree'));
  const big = (mnt: string) => join(mnt, 'bench/big/big.bin');

  await step('session A: find, cold read, re-read', () =>
    session('A', true, `${base}-a`, async (mnt) => {
      for (const phase of ['cold', 'warm'] as const)
        await step(`find ${phase}`, () =>
          metaOp(`find_${phase}`, `find ${tree(mnt)} -type f | wc -l`, 'find'),
        );
      await step('cold read', async () => rec('seq_cold_1', await sequentialRead(big(mnt), bigBytes, 1)));
      await step('re-read', async () => rec('reread', await sequentialRead(big(mnt), bigBytes, 1)));
    }),
  );
  rmSync(`${base}-a`, { recursive: true, force: true });
  await step('session B: ls -lR, cold 4 readers', () =>
    session('B', true, `${base}-b`, async (mnt) => {
      for (const phase of ['cold', 'warm'] as const)
        await step(`ls -lR ${phase}`, () =>
          metaOp(`lslr_${phase}`, `ls -lR ${tree(mnt)} | awk '/^-/ { n++ } END { print n + 0 }'`, 'ls -lR'),
        );
      await step('cold read ×4', async () => rec('seq_cold_4', await sequentialRead(big(mnt), bigBytes, 4)));
    }),
  );
  await step('session C: warm reads, random, visibility', () =>
    session('C', false, `${base}-b`, async (mnt) => {
      await step('warm read', async () => rec('seq_warm_1', await sequentialRead(big(mnt), bigBytes, 1)));
      await step('warm read ×4', async () => rec('seq_warm_4', await sequentialRead(big(mnt), bigBytes, 4)));
      await step('random 4 KiB', async () =>
        rec('rand4k_warm', await randomReads(work, big(mnt), bigBytes, RANDOM_SECONDS)),
      );
      if (run === 1)
        await step('byte-exact check', async () => {
          await sh(`cmp ${shq(ds.bigFile)} ${shq(big(mnt))}`);
        });
      await step('new-file visibility', async () => {
        const name = `${tool}-${profile}-${run}.txt`;
        const local = join(work, name);
        writeFileSync(local, `visible ${name}\n`);
        await strataUpload(endpoints(profile).strata, local, '/bench/visible');
        if (cutoffOf(results, profile, tool, 'visibility')) return;
        try {
          rec('visibility', await waitVisible(join(mnt, 'bench/visible', name), cutoffSeconds));
        } catch (err) {
          if (!/not visible after/.test((err as Error).message)) throw err;
          results.cutoffs?.push({ profile, tool, metric: 'visibility', seconds: cutoffSeconds });
        }
      });
    }),
  );
  rmSync(`${base}-b`, { recursive: true, force: true });
  await step('session D: stat every file', () =>
    session('D', true, `${base}-d`, async (mnt) => {
      for (const phase of ['cold', 'warm'] as const)
        await step(`stat ${phase}`, () =>
          metaOp(
            `stat_${phase}`,
            `bash -c ${shq(`cd ${shq(mnt)} && xargs -a ${shq(ds.listFile)} -d '\\n' stat -c %s`)} | wc -l`,
            'stat',
          ),
        );
    }),
  );
  rmSync(`${base}-d`, { recursive: true, force: true });
}

async function measureCeilings(
  profile: Profile,
  fuse: { read(): Promise<number> } | undefined,
): Promise<void> {
  const rec = (metric: string, v: number) => record(results, profile, CEILING, metric, v);
  try {
    rec('page_cache', await pageCacheRead(ds.bigFile, bigBytes));
  } catch (err) {
    fail(profile, CEILING, 'page cache', err);
  }
  try {
    if (fuse) rec('fuse_ceiling', await fuse.read());
  } catch (err) {
    fail(profile, CEILING, 'FUSE ceiling', err);
  }
  try {
    rec('raw_get', await rawRangedGets(endpoints(profile).s3.endpoint, stack.dev.bucket, bigKey, bigBytes));
  } catch (err) {
    fail(profile, CEILING, 'raw ranged GETs', err);
  }
}

async function rcloneCopy(profile: Profile, local: string, remote: string): Promise<number> {
  const t = endpoints(profile).s3;
  const conf = writeRcloneConfig(t, join(work, `rclone-copy-${profile}`));
  const env = toolEnvFor(t);
  const envPrefix = `AWS_ACCESS_KEY_ID=${shq(String(env.AWS_ACCESS_KEY_ID))} AWS_SECRET_ACCESS_KEY=${shq(String(env.AWS_SECRET_ACCESS_KEY))} env -u AWS_CA_BUNDLE`;
  const { seconds } = await timed(
    `${envPrefix} rclone copy ${shq(local)} ${shq(`strata:${t.bucket}/${remote}`)} --config ${shq(conf)} --transfers 16 --checkers 16 --s3-upload-concurrency 16 --s3-chunk-size 8M --s3-upload-cutoff 8M --log-level ERROR`,
  );
  return seconds;
}

async function measureUploads(profile: Profile, run: number): Promise<void> {
  const ep = endpoints(profile).strata;
  const tag = `${profile}-${run}`;
  const steps: Array<[string, string, () => Promise<void>]> = [
    [
      'strata',
      'upload tree',
      async () =>
        record(
          results,
          profile,
          'strata',
          'upload_tree',
          (await strataUpload(ep, ds.treeDir, `/bench-upload/${tag}`)).seconds,
        ),
    ],
    [
      'strata',
      'upload big',
      async () => {
        const r = await strataUpload(ep, ds.bigFile, `/bench-upload/${tag}`);
        record(results, profile, 'strata', 'upload_big', bigBytes / 1e6 / r.seconds);
      },
    ],
    [
      'rclone',
      'upload tree',
      async () =>
        record(
          results,
          profile,
          'rclone',
          'upload_tree',
          await rcloneCopy(profile, ds.treeDir, `scratch/${tag}/tree`),
        ),
    ],
    [
      'rclone',
      'upload big',
      async () =>
        record(
          results,
          profile,
          'rclone',
          'upload_big',
          bigBytes / 1e6 / (await rcloneCopy(profile, ds.bigFile, `scratch/${tag}`)),
        ),
    ],
  ];
  for (const [tool, name, fn] of steps) {
    if (!tools.includes(tool as Tool)) continue;
    try {
      await fn();
    } catch (err) {
      fail(profile, tool, `${name} (run ${run})`, err);
    }
    // Indexing of what strata just uploaded must not overlap the next measurement.
    await stack.drain().catch((err) => fail(profile, 'strata', 'drain after upload', err));
  }
}

const fuseCeiling = await startFuseCeiling(join(mntRoot, 'ceiling'), readFileSync(ds.bigFile)).catch(
  (err) => {
    fail('setup', CEILING, 'FUSE ceiling mount', err);
    return undefined;
  },
);
if (fuseCeiling) reg.add('FUSE ceiling mount', () => fuseCeiling.close());

const started = Date.now();
for (const profile of profiles) {
  setProfile(profile);
  log(`profile ${profile}`);
  for (let run = 1; run <= runs; run++) {
    await measureCeilings(profile, fuseCeiling);
    // Rotate the order so slow drift (other load on the machine) does not always hit one tool.
    const order = tools.map((_, i) => tools[(i + run - 1) % tools.length] as Tool);
    for (const tool of order) {
      const t0 = Date.now();
      await measureTool(tool, profile, run);
      log(`  ${profile} run ${run} ${tool}: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }
  }
}
await fuseCeiling?.close();
if (!args['no-upload'])
  for (const profile of profiles) {
    setProfile(profile);
    for (let run = 1; run <= uploadRuns; run++) await measureUploads(profile, run);
    log(`uploads ${profile} done`);
  }
log(`measured in ${((Date.now() - started) / 1000).toFixed(0)} s`);
results.meta.machine['load at end'] = loadavg()
  .map((x) => x.toFixed(2))
  .join(' / ');
results.meta.notes.push(
  `The whole run (setup, data load, measurements, uploads) took ${((Date.now() - benchStart) / 60_000).toFixed(1)} min; load averages (1/5/15 min) at start and end are in the machine line — other work on the machine inflates times.`,
);

const failures = await reg.runAll();
for (const f of failures) fail('setup', 'cleanup', f.name, f.error);

const resultsDir = join(ROOT, 'bench/results');
mkdirSync(resultsDir, { recursive: true });
const jsonPath = join(resultsDir, `compare-${results.meta.mode}.json`);
writeFileSync(jsonPath, `${JSON.stringify(results, null, 2)}\n`);
log(`raw results: ${relative(ROOT, jsonPath)}`);
if (!args['no-docs']) writeDocs(results, relative(ROOT, jsonPath));
for (const l of headline(results)) process.stdout.write(`${l}\n`);
process.exit(0);
