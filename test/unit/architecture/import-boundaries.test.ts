import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * Architecture rules from design.md §3, checked on the static import graph:
 * - the mount client's runtime graph holds no server-only dependency (pg, middy, Powertools);
 * - functions/ never loads FUSE;
 * - functions/core is pure (no AWS SDK, pg, Redis or middy).
 * Dynamic `import()` is allowed on purpose (e.g. `strata migrate` loads pg lazily).
 */
const root = resolve(import.meta.dirname, '../../..');
const STATIC_IMPORT = /^\s*(?:import|export)\s[^;]*?from\s+['"]([^'"]+)['"]/gm;
const SIDE_EFFECT_IMPORT = /^\s*import\s+['"]([^'"]+)['"]/gm;

function staticImports(file: string): string[] {
  const src = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const re of [STATIC_IMPORT, SIDE_EFFECT_IMPORT]) {
    for (const m of src.matchAll(re)) {
      // `import type` never reaches runtime.
      if (/^\s*(?:import|export)\s+type\s/.test(m[0])) continue;
      out.push(m[1]!);
    }
  }
  return out;
}

/** Packages reachable from the entry files through static imports (relative files followed). */
function packageGraph(entries: string[]): Map<string, string> {
  const seen = new Set<string>();
  const packages = new Map<string, string>();
  const stack = entries.filter((e) => existsSync(e));
  while (stack.length > 0) {
    const file = stack.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const spec of staticImports(file)) {
      if (spec.startsWith('.')) {
        const target = resolve(dirname(file), spec);
        if (existsSync(target) && statSync(target).isFile()) stack.push(target);
      } else if (!spec.startsWith('node:')) {
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
        if (!packages.has(name)) packages.set(name, relative(root, file));
      }
    }
  }
  return packages;
}

function tsFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(dir, f));
}

const SERVER_ONLY = ['pg', '@middy/core', '@aws-lambda-powertools'];

describe('import boundaries', () => {
  it('keeps server-only dependencies out of the mount client and CLI runtime graph', () => {
    const graph = packageGraph([
      join(root, 'mount-client/cli/main.ts'),
      join(root, 'mount-client/mount.ts'),
      ...tsFiles(join(root, 'mount-client')),
    ]);
    const offenders = [...graph].filter(([pkg]) =>
      SERVER_ONLY.some((s) => pkg === s || pkg.startsWith(`${s}/`)),
    );
    expect(offenders, `server-only packages imported by: ${JSON.stringify(offenders)}`).toEqual([]);
  });

  it('keeps FUSE out of functions/', () => {
    const graph = packageGraph(tsFiles(join(root, 'functions')));
    expect(graph.has('fuse-native')).toBe(false);
  });

  it('keeps functions/core pure', () => {
    for (const file of tsFiles(join(root, 'functions/core'))) {
      const pkgs = staticImports(file).filter((s) => !s.startsWith('.') && !s.startsWith('node:'));
      const impure = pkgs.filter((p) =>
        /^(@aws-sdk|pg$|@upstash|@middy|@aws-lambda-powertools|ioredis)/.test(p),
      );
      expect(impure, `${relative(root, file)} imports ${impure.join(', ')}`).toEqual([]);
    }
  });
});
