/**
 * Several mount-client data paths in one process, each with its own cache dir and peer server, all
 * reading one fauxqs S3 — a fleet on one machine, for peer tests and the benchmark.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import type { ObjectVersion } from '../../../mount-client/block-cache/types.ts';
import { createDataPath, type DataPath } from '../../../mount-client/object-client/data-path.ts';
import { type Peering, type PeeringOptions, startPeering } from '../../../mount-client/peers/index.ts';

export const SECRET = 'integration-test-peer-secret-0123456789';

export interface FleetNode {
  name: string;
  dp: DataPath;
  peering: Peering;
  address: string;
  close(): Promise<void>;
}

export interface NodeOptions {
  name: string;
  /** `bucket`: the one the nodes serve (their peer servers refuse any other). */
  s3: { region: string; endpoint: string; bucket?: string };
  blockSize: number;
  peering?: Partial<PeeringOptions>;
}

export async function startNode(o: NodeOptions): Promise<FleetNode> {
  const dir = mkdtempSync(join(tmpdir(), `strata-peer-${o.name}-`));
  let dp: DataPath | undefined;
  const peering = await startPeering({
    secret: SECRET,
    listen: '127.0.0.1:0',
    blockSize: o.blockSize,
    // The server may be asked before the data path below exists (a peer that learned of us early).
    source: {
      loadBlock: (id, opts) => {
        if (!dp) throw new Error('node is starting');
        return dp.loadBlock(id, opts);
      },
    },
    metricsRegistry: new Registry(),
    policy: { bucket: o.s3.bucket ?? '', dataPrefix: '' },
    ...o.peering,
  });
  dp = await createDataPath({
    cacheDir: dir,
    cacheSizeBytes: 1 << 30,
    blockSize: o.blockSize,
    region: o.s3.region,
    endpoint: o.s3.endpoint,
    peer: peering.fetcher,
    metrics: new Registry(),
    minFreeBytes: 0,
  });
  const node: FleetNode = {
    name: o.name,
    dp,
    peering,
    address: peering.address,
    async close() {
      await peering.close();
      await dp?.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return node;
}

/** Every node learns every other node (static membership edited at run time). */
export function connect(nodes: FleetNode[]): void {
  const all = nodes.map((n) => n.address);
  for (const n of nodes) n.peering.membership.setMembers(all);
}

/** Reads a whole object in FUSE-sized (128 KiB) reads through one handle; returns its sha256. */
export async function readAll(
  node: FleetNode,
  v: ObjectVersion,
  onProgress?: (offset: number) => void | Promise<void>,
): Promise<string> {
  const h = createHash('sha256');
  const r = node.dp.open(v);
  const step = 128 * 1024;
  for (let off = 0; off < v.size; off += step) {
    h.update(await r.read(off, step));
    await onProgress?.(off);
  }
  r.close();
  return h.digest('hex');
}

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
export const gets = (n: FleetNode) => n.dp.stats().s3.gets;
