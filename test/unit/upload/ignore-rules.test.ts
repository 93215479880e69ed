import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scanDirectory } from '../../../mount-client/upload/scan.ts';

let root: string;
const files = [
  'README.md',
  'src/index.ts',
  'src/app.log',
  'node_modules/x/index.js',
  'pkg/node_modules/y.js',
  '.git/HEAD',
  '.env',
  '.env.production',
  'dist/bundle.js',
  'build/out.o',
  'lib/__pycache__/m.pyc',
  'lib/m.pyc',
  'lib/m.py',
  'vendor/dep.go',
  '.DS_Store',
  'photos/Thumbs.db',
  'data/keep.csv',
  'data/secret.key',
  'data/raw/big.tmp',
  'data/raw/notes.txt',
  'docker/ctx.txt',
  'docker/skip.bin',
  'nested/deep/a.bak',
  'nested/deep/b.txt',
  'nested/deep/important.bak',
];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'strata-ignore-'));
  for (const f of files) {
    await mkdir(dirname(join(root, f)), { recursive: true });
    await writeFile(join(root, f), f);
  }
  await writeFile(join(root, '.gitignore'), '*.key\n');
  await writeFile(join(root, 'data/.gitignore'), 'raw/*.tmp\n');
  await writeFile(join(root, 'docker/.dockerignore'), '*.bin\n');
  // Deeper rules add to (and can re-include against) shallower ones, as in git.
  await writeFile(join(root, '.strataignore'), '*.bak\n');
  await writeFile(join(root, 'nested/deep/.strataignore'), '!important.bak\n');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const rels = async (opts = {}) =>
  (await scanDirectory(root, '/r', opts)).files.map((f) => f.remote.slice(3)).sort();

describe('ignore rules', () => {
  it('default excludes + .gitignore/.dockerignore/.strataignore at every level', async () => {
    expect(await rels()).toEqual(
      [
        '.gitignore',
        '.strataignore',
        'README.md',
        'data/.gitignore',
        'data/keep.csv',
        'data/raw/notes.txt',
        'docker/.dockerignore',
        'docker/ctx.txt',
        'lib/m.py',
        'nested/deep/.strataignore',
        'nested/deep/b.txt',
        'nested/deep/important.bak',
        'src/index.ts',
      ].sort(),
    );
  });

  it('--no-default-excludes keeps dependencies and builds but still honours ignore files', async () => {
    const got = await rels({ defaultExcludes: false });
    for (const f of [
      'node_modules/x/index.js',
      'pkg/node_modules/y.js',
      '.git/HEAD',
      '.env',
      'dist/bundle.js',
      'src/app.log',
    ]) {
      expect(got).toContain(f);
    }
    expect(got).not.toContain('data/secret.key');
    expect(got).not.toContain('docker/skip.bin');
  });

  it('--exclude adds patterns', async () => {
    const got = await rels({ excludes: ['*.csv', 'lib/'] });
    expect(got).not.toContain('data/keep.csv');
    expect(got).not.toContain('lib/m.py');
    expect(got).toContain('README.md');
  });

  it('reports what it ignored (directories once)', async () => {
    const scan = await scanDirectory(root, '/r');
    expect(scan.ignored).toContain('node_modules/');
    expect(scan.ignored).toContain('pkg/node_modules/');
    expect(scan.ignored).toContain('data/raw/big.tmp');
    expect(scan.ignored).not.toContain('node_modules/x/index.js');
  });
});
