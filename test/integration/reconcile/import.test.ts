/**
 * `strata import` on a bucket pre-filled with 5,000 objects under nested prefixes, tricky names
 * included, written before Strata existed (no events). Runs the real CLI as a subprocess.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getObject } from '../../../functions/adapters/pg/index-store.ts';
import type { ReconcileRun } from '../../../functions/core/reconcile/types.ts';
import { REPO_ROOT } from '../../../local/lambda-runtime.ts';
import { activeCount, type Harness, journalCount, putObjects, startHarness } from './helpers.ts';

const run = promisify(execFile);
let h: Harness;

// Names that break naive URL handling, normalization or sort order: spaces, +, %, #, ?, &, =,
// quotes, emoji (UTF-16 surrogates sort differently from UTF-8 bytes), fullwidth and CJK, NFC accents.
const TRICKY = [
  'a b.txt',
  'a+b.txt',
  '100%.txt',
  '#hash.txt',
  'q?.txt',
  'x&y=z.txt',
  'it\'s "quoted".txt',
  '😀 smile.txt',
  '\uff5e tilde.txt',
  '日本語.txt',
  'café.txt',
  '~tilde.txt',
];
const paths: string[] = [];
for (let i = 0; paths.length < 5000; i++) {
  const year = 2019 + (i % 5);
  const month = String((i % 12) + 1).padStart(2, '0');
  const name = i < TRICKY.length * 4 ? `${i} ${TRICKY[i % TRICKY.length]}` : `file-${i}.bin`;
  const dir =
    i % 7 === 0 ? `/archive/${year}` : `/archive/${year}/${month}/${i % 3 === 0 ? 'raw 🗂' : 'clean'}`;
  paths.push(`${dir}/${name}`);
}

async function strata(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [join(REPO_ROOT, 'bin/strata.js'), ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, STRATA_API_URL: h.stack.dev.apiUrl, STRATA_TOKEN: h.stack.adminToken },
    timeout: 120_000,
  });
  return stdout;
}

beforeAll(async () => {
  h = await startHarness('import', { STRATA_RECONCILE_GRACE_SECONDS: '0' });
  await putObjects(h, paths);
  // Keys no Strata path maps to: a folder marker and a non-NFC (decomposed) name.
  for (const key of ['data/archive/folder/', 'data/archive/cafe\u0301.txt']) {
    await h.stack.s3.send(new PutObjectCommand({ Bucket: h.stack.dev.bucket, Key: key, Body: 'x' }));
  }
});
afterAll(async () => {
  await h?.stop();
});

describe('strata import', () => {
  it('--dry-run counts what would be imported and writes nothing', async () => {
    const out = JSON.parse(await strata('import', '--dry-run', '--json')) as ReconcileRun;
    expect(out).toMatchObject({ status: 'succeeded', dryRun: true });
    expect(out.counts).toMatchObject({ scanned: paths.length + 2, added: paths.length, ignored: 2 });
    expect(await activeCount(h)).toBe(0);
  });

  it('indexes every object, tricky names included, through the same write path as the indexer', async () => {
    const out = JSON.parse(await strata('import', '--json')) as ReconcileRun;
    expect(out.status).toBe('succeeded');
    expect(out.shards.total, JSON.stringify(out)).toBeGreaterThan(1); // /archive/2019 … /archive/2023 split the work
    expect(out.counts).toMatchObject({ added: paths.length, ignored: 2, missing: 0 });
    expect(await activeCount(h)).toBe(paths.length);
    expect(await journalCount(h, out.id)).toBe(paths.length);
    for (const p of paths.slice(0, TRICKY.length * 4)) {
      expect((await getObject(h.stack.pool, p))?.state, p).toBe('active');
    }
    // Importing again finds nothing to do
    const again = JSON.parse(await strata('import', '--json')) as ReconcileRun;
    expect(again.counts).toMatchObject({ added: 0, unchanged: paths.length });
  });

  it('human output and --help', async () => {
    const help = await strata('import', '--help');
    expect(help).toMatch(/--prefix <path>/);
    expect(help).toMatch(/--dry-run/);
    const text = await strata('reconcile', '--prefix', '/archive/2019', '--wait', '--dry-run');
    expect(text).toMatch(/succeeded/);
    expect(text).toMatch(/dry run: nothing was written/);
  });
});
