/**
 * Ceilings measured in the same run as the tools, per network profile:
 *   page cache    `cat` of the big file from local disk, second pass (in the page cache)
 *   FUSE ceiling  a minimal fuse-native filesystem serving the same bytes from memory — the most
 *                 any Node FUSE filesystem (Strata's binding) can deliver through the kernel here
 *   raw GET       8 concurrent 8 MiB ranged GETs of the same object with undici (the leanest HTTP
 *                 client we use) through the profile's S3 endpoint — the most any S3 client can
 *                 pull from this emulator
 * bench/mount/fs.ts and bench/mount/ceilings.ts measure the same ceilings for their own runs;
 * neither exports a function for an arbitrary endpoint and file, hence these few lines.
 */
import { mkdirSync } from 'node:fs';
import Fuse from 'fuse-native';
import { Agent } from 'undici';
import { mbps, sequentialRead, shq, timed } from './measure.ts';

const MiB = 1024 * 1024;

export async function pageCacheRead(file: string, bytes: number): Promise<number> {
  await timed(`cat ${shq(file)} > /dev/null`);
  return sequentialRead(file, bytes, 1);
}

export interface FuseCeiling {
  read(): Promise<number>;
  close(): Promise<void>;
}

/** Mounts the ceiling filesystem once (one file, `/f`); `read()` measures a warm `cat`. */
export async function startFuseCeiling(mountpoint: string, data: Buffer): Promise<FuseCeiling> {
  mkdirSync(mountpoint, { recursive: true });
  const now = new Date();
  const attr = (mode: number, size: number) => ({
    mode,
    uid: 0,
    gid: 0,
    size,
    mtime: now,
    atime: now,
    ctime: now,
  });
  const fuse = new Fuse(
    mountpoint,
    {
      getattr: (path, cb) =>
        path === '/'
          ? cb(0, attr(0o40555, 4096))
          : path === '/f'
            ? cb(0, attr(0o100444, data.length))
            : cb(Fuse.ENOENT),
      readdir: (_p, cb) => cb(0, ['f']),
      open: (_p, _f, cb) => cb(0, 1),
      release: (_p, _fd, cb) => cb(0),
      read: (_p, _fd, buf, len, pos, cb) => cb(data.copy(buf, 0, pos, Math.min(pos + len, data.length))),
    },
    { force: true, autoUnmount: true },
  );
  await new Promise<void>((ok, fail) => fuse.mount((e) => (e ? fail(e) : ok())));
  let closed = false;
  return {
    read: () => sequentialRead(`${mountpoint}/f`, data.length, 1),
    close: async () => {
      if (closed) return;
      closed = true;
      await new Promise<void>((r) => fuse.unmount(() => r()));
    },
  };
}

/** MB/s of 8 concurrent 8 MiB ranged GETs over the whole object, bodies discarded. */
export async function rawRangedGets(
  endpoint: string,
  bucket: string,
  key: string,
  size: number,
): Promise<number> {
  const RANGE = 8 * MiB;
  const CONCURRENCY = 8;
  const agent = new Agent({ connections: CONCURRENCY });
  const path = `/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
  try {
    let next = 0;
    const t0 = performance.now();
    const worker = async () => {
      for (;;) {
        const start = next;
        next += RANGE;
        if (start >= size) return;
        const end = Math.min(size, start + RANGE) - 1;
        const res = await agent.request({
          origin: endpoint,
          path,
          method: 'GET',
          headers: { range: `bytes=${start}-${end}` },
        });
        if (res.statusCode !== 206 && res.statusCode !== 200) {
          await res.body.text();
          throw new Error(`raw GET ${path} ${start}-${end}: HTTP ${res.statusCode}`);
        }
        let n = 0;
        for await (const chunk of res.body) n += (chunk as Buffer).length;
        if (n !== end - start + 1)
          throw new Error(`raw GET ${path}: got ${n} bytes for a ${end - start + 1}-byte range`);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    return mbps(size, (performance.now() - t0) / 1000);
  } finally {
    await agent.close();
  }
}
