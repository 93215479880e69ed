import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../../../functions/core/errors.ts';
import { scanArguments } from '../../../mount-client/upload/scan.ts';

const dir = mkdtempSync(join(tmpdir(), 'strata-scan-args-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('strata upload arguments', () => {
  it('a missing argument names itself and what to check (was a bare ENOENT from stat)', async () => {
    writeFileSync(join(dir, 'there.txt'), 'x');
    const missing = join(dir, 'nothere.txt');
    const err = await scanArguments([join(dir, 'there.txt'), missing], '/x/').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toBe(
      `cannot upload ${missing}: no such file or directory (check the path; directories upload recursively)`,
    );
  });

  it('an existing file is scanned to <to>/<name>', async () => {
    writeFileSync(join(dir, 'a.txt'), 'abc');
    const r = await scanArguments([join(dir, 'a.txt')], '/x/');
    expect(r.files).toMatchObject([{ remote: '/x/a.txt', size: 3 }]);
  });
});
