import type { FaultOptions } from '../../object-client/data-path.ts';
import type { RegisterCommand } from '../context.ts';

interface MountFlags {
  cacheDir?: string;
  cacheSize?: string;
  cacheMinFree?: string;
  blockSize: string;
  readAheadMax: string;
  maxS3Concurrency: string;
  memoryCache: string;
  allowOther?: boolean;
  directIo?: boolean;
  lentReads: boolean;
  cacheWrites: string;
  metricsPort?: string;
  presign?: boolean;
  uid?: string;
  gid?: string;
  region?: string;
  s3Endpoint?: string;
  peers?: string;
  peerListen?: string;
  peerAdvertise?: string;
  peerSecret?: string;
  peerRegistry?: boolean;
  peerClientOnly?: boolean;
  peerTimeout?: string;
  peerKeep?: string;
}

export const register: RegisterCommand = (program, ctx) => {
  program
    .command('mount')
    .description(
      'mount the index read-only at <mountpoint> and serve it until SIGINT/SIGTERM or `strata unmount` (runs in the foreground)',
    )
    .argument('<mountpoint>', 'an existing, empty directory')
    .option(
      '--cache-dir <dir>',
      'persistent block cache (default /var/cache/strata as root, else $XDG_CACHE_HOME/strata or ~/.cache/strata)',
    )
    .option(
      '--cache-size <size>',
      'block cache cap, e.g. 50G (default: half the cache filesystem, at most 100G)',
    )
    .option(
      '--cache-min-free <size>',
      'free space kept on the cache filesystem; blocks that would go below it are not cached (default: 5% of it, at least 1G; 0 on a dedicated cache disk or tmpfs)',
    )
    .option('--block-size <size>', 'S3 range / cache block size; part of the cache key', '8M')
    .option(
      '--read-ahead-max <size>',
      'largest sequential read-ahead window per open file (at most half of --memory-cache)',
      '64M',
    )
    .option('--max-s3-concurrency <n>', 'concurrent S3 GETs for this mount', '32')
    .option(
      '--memory-cache <size>',
      'hot-block memory tier in front of the disk cache (0 disables it)',
      '256M',
    )
    .option(
      '--allow-other',
      'let other users read the mount (needs user_allow_other in /etc/fuse.conf unless root)',
    )
    .option(
      '--metrics-port <port>',
      'serve Prometheus /metrics and /stats on 127.0.0.1:<port> (0 = any free port)',
    )
    .option(
      '--presign',
      'read through presigned GET URLs from the API (on-prem nodes without AWS credentials)',
    )
    .option(
      '--cache-writes <mode>',
      'disk-cache I/O: direct (O_DIRECT block writes, and warm streams read ahead from disk into memory with O_DIRECT: no page-cache copies, least CPU per GiB) or buffered (through the page cache, as before; for filesystems where O_DIRECT misbehaves)',
      'direct',
    )
    .option(
      '--direct-io',
      'bypass the kernel page cache for file data: cheaper large streaming reads, but a MAP_SHARED mmap of a file fails with ENODEV (libfuse 2 cannot negotiate it; numpy memmap and safetensors need the default) and no kernel read-ahead for small reads (see docs/mount.md)',
    )
    .option(
      '--no-lent-reads',
      "answer every read in JavaScript; by default the rebuilt fuse-native addon answers a streaming reader's reads inside a block already in memory by itself (about half the CPU per GiB warm; docs/mount.md)",
    )
    .option('--uid <uid>', 'owner reported for every file (default: the mounting user)')
    .option('--gid <gid>', 'group reported for every file (default: the mounting user)')
    .option('--region <region>', 'AWS region of the bucket (env AWS_REGION, else .strata/dev.json)')
    .option('--s3-endpoint <url>', 'S3 endpoint override (env STRATA_S3_ENDPOINT, else .strata/dev.json)')
    .option(
      '--peers <host:port,...>',
      'share cached blocks with these mount clients (static list; may include this node); see docs/peers.md',
    )
    .option('--peer-registry', 'discover peers through the API registry (heartbeat + GET /v1/peers)')
    .option(
      '--peer-listen <host:port>',
      'where this node serves blocks to peers (default 127.0.0.1:7431; only when peers are configured)',
    )
    .option('--peer-advertise <host:port>', 'address peers use to reach this node (default: --peer-listen)')
    .option(
      '--peer-client-only',
      'ask peers for blocks but serve none and own none (short-lived nodes); no peer server',
    )
    .option(
      '--peer-timeout <ms>',
      'wait this long for an owner to answer before reading from S3 instead (default 1000; raise it on slow or loaded networks)',
    )
    .option(
      '--peer-keep <policy>',
      'which peer-fetched blocks this node also caches: second-use (default), always or never (env STRATA_PEER_KEEP)',
    )
    .option(
      '--peer-secret <secret>',
      'cluster secret for peer requests (prefer env STRATA_PEER_SECRET: flags show up in ps)',
    )
    .option(
      '--foreground',
      'accepted for fstab/systemd compatibility: strata mount always runs in the foreground',
    )
    .action(async (mountpoint: string, flags: MountFlags) => {
      const { defaultCacheDir, defaultCacheSize, parseSize, runMountForeground } = await import(
        '../../mount.ts'
      );
      const { keepFromEnv, peerMountExtension } = await import('../../peers/mount-extension.ts');
      const { parsePeerList } = await import('../../peers/address.ts');
      const config = ctx.config();
      const cacheDir = flags.cacheDir ?? defaultCacheDir();
      const region = flags.region ?? process.env.AWS_REGION ?? config.dev?.region;
      if (!region) throw new Error('no AWS region: pass --region or set AWS_REGION');
      const s3Endpoint = flags.s3Endpoint ?? process.env.STRATA_S3_ENDPOINT ?? config.dev?.s3Endpoint;
      const peerExtension = peerMountExtension({
        peers: parsePeerList(flags.peers ?? ''),
        registry: flags.peerRegistry ?? false,
        ...(flags.peerListen ? { listen: flags.peerListen } : {}),
        ...(flags.peerAdvertise ? { advertise: flags.peerAdvertise } : {}),
        serve: !flags.peerClientOnly,
        secret: flags.peerSecret ?? process.env.STRATA_PEER_SECRET,
        blockSize: parseSize(flags.blockSize),
        tuning: {
          ...(flags.peerTimeout !== undefined
            ? { timeoutMs: positiveInt(flags.peerTimeout, '--peer-timeout', 1) }
            : {}),
          ...(flags.peerKeep !== undefined ? { keep: keepFromEnv(flags.peerKeep) } : {}),
        },
      });
      const readAheadMax = parseSize(flags.readAheadMax);
      const memoryCache = parseSize(flags.memoryCache);
      const { effectiveReadAheadMax } = await import('../../prefetch/read-ahead.ts');
      const window = effectiveReadAheadMax(readAheadMax, memoryCache, parseSize(flags.blockSize));
      if (window < readAheadMax) {
        process.stderr.write(
          `strata mount: --read-ahead-max ${flags.readAheadMax} is more than half of --memory-cache ${flags.memoryCache}; read-ahead is capped at ${window} bytes so prefetched blocks are not evicted before they are read (raise --memory-cache to allow a larger window)\n`,
        );
      }
      // Every flag is checked before the credential probe below, which takes up to a second and
      // prints a notice: a bad --uid used to fail only after both.
      const uid = flags.uid !== undefined ? positiveInt(flags.uid, '--uid', 0) : (process.getuid?.() ?? 0);
      const gid = flags.gid !== undefined ? positiveInt(flags.gid, '--gid', 0) : (process.getgid?.() ?? 0);
      await runMountForeground({
        ...(peerExtension ? { extensions: [peerExtension] } : {}),
        mountpoint,
        apiUrl: config.apiUrl,
        token: config.token,
        region,
        ...(s3Endpoint ? { s3Endpoint } : {}),
        cacheDir,
        cacheSizeBytes: flags.cacheSize ? parseSize(flags.cacheSize) : await defaultCacheSize(cacheDir),
        ...(flags.cacheMinFree !== undefined ? { cacheMinFreeBytes: parseSize(flags.cacheMinFree) } : {}),
        blockSize: parseSize(flags.blockSize),
        readAheadMaxBytes: readAheadMax,
        memoryCacheBytes: memoryCache,
        maxS3Concurrency: positiveInt(flags.maxS3Concurrency, '--max-s3-concurrency'),
        allowOther: flags.allowOther ?? false,
        directIo: flags.directIo ?? false,
        lentReads: flags.lentReads !== false,
        cacheWrites: cacheWritesMode(flags.cacheWrites),
        ...(flags.metricsPort !== undefined ? { metricsPort: port(flags.metricsPort) } : {}),
        presign: flags.presign ?? (await noAwsCredentials()),
        uid,
        gid,
        ...faultsFromEnv(),
      });
    });
};

/**
 * Without --presign, a node reads S3 with the AWS default credential chain (env, profile, SSO, EC2
 * instance profile, …). When that chain has nothing — an on-prem node, or a laptop against the
 * local stack — reading through presigned URLs from the API is the only way that can work, so the
 * mount says so and switches instead of failing every read with EIO.
 */
async function noAwsCredentials(): Promise<boolean> {
  const { defaultProvider } = await import('@aws-sdk/credential-provider-node');
  try {
    // One quick IMDS attempt: off EC2 the instance-metadata probe would otherwise retry for seconds.
    await defaultProvider({ timeout: 1000, maxRetries: 0 })();
    return false;
  } catch {
    process.stderr.write(
      'strata mount: no AWS credentials found (env, profile, instance profile); reading through presigned URLs from the API (--presign)\n',
    );
    return true;
  }
}

function cacheWritesMode(text: string): 'buffered' | 'direct' {
  if (text === 'buffered' || text === 'direct') return text;
  throw new Error(`--cache-writes must be buffered or direct, got ${JSON.stringify(text)}`);
}

function positiveInt(text: string, flag: string, min = 1): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min)
    throw new Error(`${flag} must be an integer ≥ ${min}, got ${JSON.stringify(text)}`);
  return n;
}

function port(text: string): number {
  const n = positiveInt(text, '--metrics-port', 0);
  if (n > 65535) throw new Error(`--metrics-port must be 0…65535, got ${n}`);
  return n;
}

/** Chaos/test hook: STRATA_S3_FAULTS='{"errorRate":0.05,"timeoutRate":0.05}' injects S3 failures. */
function faultsFromEnv(): { faults?: FaultOptions } {
  const raw = process.env.STRATA_S3_FAULTS;
  if (!raw) return {};
  try {
    return { faults: JSON.parse(raw) as FaultOptions };
  } catch (err) {
    throw new Error(`STRATA_S3_FAULTS is not valid JSON (${(err as Error).message})`);
  }
}
