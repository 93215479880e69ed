/**
 * `strata quota set|list` — per-directory byte quotas for uploads (needs an `admin` token).
 * A quota is checked and reserved when an upload is presigned (413 with the remaining bytes when it
 * does not fit), released on abort/expiry and counted as used once the object is indexed.
 */
import { InvalidArgumentError } from 'commander';
import type { RegisterCommand } from '../context.ts';
import { formatBytes } from './format.ts';

export interface QuotaView {
  prefix: string;
  limitBytes: number;
  reservedBytes: number;
  usedBytes: number;
  remainingBytes: number;
}

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tib: 1024 ** 4,
  p: 1024 ** 5,
  pib: 1024 ** 5,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  pb: 1e15,
};

/** Parses `1073741824`, `500MiB`, `2.5 TiB`, `10GB` (binary units for K/M/G/T/P and *iB). */
export function parseBytes(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m ? UNITS[(m[2] ?? '').toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new InvalidArgumentError(
      `invalid size ${JSON.stringify(text)}: use a byte count or a number with a unit, e.g. 500MiB, 2TiB, 10GB`,
    );
  }
  const bytes = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes))
    throw new InvalidArgumentError(`size ${JSON.stringify(text)} is too large`);
  return bytes;
}

/** One `quota list` row; the percentage is used + reserved of the limit (it read as "% remaining"). */
export function quotaLine(q: QuotaView): string {
  const pct =
    q.limitBytes > 0 ? ` (${(((q.usedBytes + q.reservedBytes) / q.limitBytes) * 100).toFixed(0)}% used)` : '';
  return `${q.prefix}  limit ${formatBytes(q.limitBytes)}  used ${formatBytes(q.usedBytes)}  reserved ${formatBytes(q.reservedBytes)}  remaining ${formatBytes(q.remainingBytes)}${pct}`;
}

export const register: RegisterCommand = (program, ctx) => {
  const quota = program
    .command('quota')
    .description('set and list per-directory upload quotas in bytes (admin scope)');

  quota
    .command('set')
    .description('create or change the byte quota of a directory; 0 blocks new uploads there')
    .argument('<prefix>', 'remote directory, e.g. /team-a (or / for everything)')
    .argument('<size>', 'limit, e.g. 500GiB, 2TiB or a byte count', parseBytes)
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      '\nEvery quota covering a path applies (a /team-a quota and a / quota both count an upload to /team-a/x).\nLowering a limit below what is used is allowed: new uploads then get HTTP 413 until files are deleted.',
    )
    .action(async (prefix: string, bytes: number, opts: { json?: boolean }) => {
      const q = await ctx.api().request<QuotaView>('PUT', '/v1/quotas', {
        body: { prefix, bytes },
        retry: true, // PUT of an absolute value: repeating it changes nothing
      });
      ctx.print(q, () => quotaLine(q), opts.json ?? ctx.flags.json);
    });

  quota
    .command('list')
    .description('list quotas with used, reserved (uploads in flight) and remaining bytes')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const { quotas } = await ctx.api().request<{ quotas: QuotaView[] }>('GET', '/v1/quotas');
      ctx.print(quotas, () => quotas.map(quotaLine).join('\n') || 'no quotas', opts.json ?? ctx.flags.json);
    });
};
