/**
 * The one synth with real esbuild bundling (every other infra test skips it): every handler of
 * routes.ts bundles as ESM for nodejs22.x, the generated entry resolves secrets before loading the
 * handler, and the migrate bundle carries its SQL files.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LambdaName, lambdas } from '../../functions/handlers/routes.ts';
import { findFunction, type Synth, synthStage } from './support.ts';

let s: Synth;
beforeAll(() => {
  s = synthStage('dev', { 'aws:cdk:bundling-stacks': ['**'] });
}, 300_000);
afterAll(() => s?.cleanup());

function assetDir(lambda: LambdaName): string {
  for (const name of ['api', 'workers', 'database'] as const) {
    const t = s.template(name);
    try {
      const [, fn] = findFunction(t, lambda);
      const hash = String(fn.Properties.Code.S3Key).replace(/\.zip$/, '');
      return join(s.app.outdir, `asset.${hash}`);
    } catch {}
  }
  throw new Error(`no function for ${lambda}`);
}

describe('bundling', () => {
  it('every Lambda is an ESM bundle whose entry loads secrets before the handler module', () => {
    for (const name of Object.keys(lambdas) as LambdaName[]) {
      const dir = assetDir(name);
      const code = readFileSync(join(dir, 'index.mjs'), 'utf8');
      expect(code, name).toContain('createRequire');
      expect(code, name).toContain('GetSecretValue');
      expect(code, name).toMatch(/export\s*\{[^}]*handler/);
      expect(existsSync(join(dir, 'index.mjs.map')), name).toBe(true);
    }
  });

  it('the migrate bundle ships the SQL migrations', () => {
    const sql = readdirSync(join(assetDir('migrate'), 'migrations')).filter((f) => f.endsWith('.sql'));
    expect(sql.sort()).toEqual(
      readdirSync(join(import.meta.dirname, '../../functions/migrations'))
        .filter((f) => f.endsWith('.sql'))
        .sort(),
    );
  });
});
