/**
 * Review finding (session 5): `strata sync --dry-run` printed the files it would upload and the
 * remote files it would delete raw, so a name with U+202E displayed as another name — in the very
 * list read before confirming deletes — while ls, stat and the upload summary escape them.
 */
import { describe, expect, it } from 'vitest';
import { dryRunText } from '../../../../mount-client/cli/commands/sync.ts';

describe('strata sync --dry-run output', () => {
  it('escapes reordering and invisible characters in the names it lists', () => {
    // Prepare: a local "invoice<U+202E>fdp.exe" (shows as invoiceexe.pdf) and a remote name with a ZWSP.
    const plan = {
      upload: [{ abs: '/l/invoice\u202Efdp.exe', remote: '/r/invoice\u202Efdp.exe', size: 1, mtimeMs: 0 }],
      remoteOnly: ['/r/pay\u200Broll.csv'],
    };
    // Act
    const text = dryRunText(plan);
    // Assess
    expect(text).toBe(
      [
        'would upload 1 file(s) (unchanged ones are skipped at upload time)',
        '  upload /r/invoice\\u{202E}fdp.exe',
        'would delete 1 remote file(s)',
        '  delete /r/pay\\u{200B}roll.csv',
      ].join('\n'),
    );
    expect(text).not.toMatch(/[\u200B\u202E]/);
  });
});
