/**
 * `strata cache stats|verify|clear` — inspect and maintain the mount client's persistent block
 * cache. `stats` and `verify` work next to a running mount (read-only; verify then only reports, the
 * mount drops bad blocks itself when it reads them); `clear` needs the mount stopped, because the
 * mount's in-memory index would otherwise point at deleted files.
 */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import type { RegisterCommand } from '../context.ts';

interface CacheFlags {
  cacheDir?: string;
  json?: boolean;
}

/**
 * The cache directory to work on, which must exist: opening the store creates it, so a mistyped
 * --cache-dir used to be created and reported as an empty cache (and `stats` as root created
 * /var/cache/strata).
 */
async function cacheDirOf(flags: CacheFlags): Promise<string> {
  const { defaultCacheDir } = await import('../../mount.ts');
  const dir = flags.cacheDir ?? defaultCacheDir();
  if (!existsSync(dir))
    throw new Error(
      `no block cache at ${dir}: the directory does not exist; pass the --cache-dir your \`strata mount\` uses${
        flags.cacheDir ? '' : ' (this is the default, which no mount has used yet)'
      }`,
    );
  return dir;
}

function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

function withDirOption(cmd: Command): Command {
  return cmd
    .option('--cache-dir <dir>', 'cache directory (default: the mount default, /var/cache/strata as root)')
    .option('--json', 'print JSON');
}

export const register: RegisterCommand = (program, ctx) => {
  const cache = program
    .command('cache')
    .description('inspect and maintain the persistent block cache of `strata mount`');

  withDirOption(cache.command('stats'))
    .description('show what the cache holds (safe while mounted)')
    .action(async (flags: CacheFlags) => {
      const dir = await cacheDirOf(flags);
      const { DiskBlockStore, cacheOwner } = await import('../../block-cache/disk-cache.ts');
      const { statfs } = await import('node:fs/promises');
      const store = await DiskBlockStore.open({
        dir,
        capacityBytes: Number.POSITIVE_INFINITY,
        readOnly: true,
      });
      const st = store.stats();
      const fsStat = await statfs(dir);
      const data = {
        dir,
        blocks: st.entries,
        bytes: st.bytes,
        filesystemFreeBytes: fsStat.bavail * fsStat.bsize,
        filesystemSizeBytes: fsStat.blocks * fsStat.bsize,
        mountedBy: (await cacheOwner(dir)) ?? null,
      };
      ctx.print(
        data,
        () =>
          [
            `cache:      ${dir}`,
            `blocks:     ${data.blocks}`,
            `size:       ${human(data.bytes)}`,
            `disk free:  ${human(data.filesystemFreeBytes)} of ${human(data.filesystemSizeBytes)}`,
            `in use by:  ${data.mountedBy ? `pid ${data.mountedBy}` : 'no running mount'}`,
          ].join('\n'),
        flags.json ?? ctx.flags.json,
      );
    });

  withDirOption(cache.command('verify'))
    .description('check every block header and crc32c; remove bad blocks (report only while mounted)')
    .action(async (flags: CacheFlags) => {
      const dir = await cacheDirOf(flags);
      const { DiskBlockStore, cacheOwner } = await import('../../block-cache/disk-cache.ts');
      const owner = await cacheOwner(dir);
      const store = await DiskBlockStore.open({
        dir,
        capacityBytes: Number.POSITIVE_INFINITY,
        minFreeBytes: 0,
        readOnly: owner !== undefined,
      });
      try {
        const r = await store.verify();
        const data = { dir, ...r, mountedBy: owner ?? null };
        ctx.print(
          data,
          () =>
            `${r.checked} block(s) checked, ${r.bad} bad` +
            (r.bad
              ? ` (${Object.entries(r.reasons)
                  .map(([k, n]) => `${k}: ${n}`)
                  .join(', ')})`
              : '') +
            (r.bad && owner
              ? `; left in place because pid ${owner} has the cache mounted (it drops bad blocks on read)`
              : '') +
            (r.removed ? `; removed ${r.removed}` : ''),
          flags.json ?? ctx.flags.json,
        );
        if (r.bad) process.exitCode = 1;
      } finally {
        await store.close();
      }
    });

  withDirOption(cache.command('clear'))
    .description('delete every cached block (the mount using this cache must be stopped)')
    .action(async (flags: CacheFlags) => {
      const dir = await cacheDirOf(flags);
      const { DiskBlockStore } = await import('../../block-cache/disk-cache.ts');
      // Taking the lock is what refuses to clear under a running mount (CacheLockedError says so).
      const store = await DiskBlockStore.open({
        dir,
        capacityBytes: Number.POSITIVE_INFINITY,
        minFreeBytes: 0,
      });
      try {
        const r = await store.clear();
        ctx.print(
          { dir, removedBlocks: r.entries, removedBytes: r.bytes },
          () => `removed ${r.entries} block(s), ${human(r.bytes)} from ${dir}`,
          flags.json ?? ctx.flags.json,
        );
      } finally {
        await store.close();
      }
    });
};
