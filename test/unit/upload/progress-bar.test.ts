import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'strata-progress-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const hasScript = spawnSync('script', ['--version']).status === 0;

describe('the upload progress bar on a terminal', () => {
  it.skipIf(!hasScript)(
    'Ctrl-C restores the cursor and line wrapping, says how to resume and exits 130',
    () => {
      // A program that draws the bar and then receives SIGINT mid-transfer, run on a pseudo-terminal.
      const program = join(dir, 'interrupted.ts');
      const barModule = new URL('../../../mount-client/upload/progress-bar.ts', import.meta.url).pathname;
      writeFileSync(
        program,
        `import { progressView } from ${JSON.stringify(barModule)};
const view = progressView(true, 'run the same command again to resume');
view.update({ filesDone: 0, filesTotal: 1, bytesDone: 10, bytesTotal: 100 } as never);
setTimeout(() => process.kill(process.pid, 'SIGINT'), 50);
setTimeout(() => process.exit(0), 10_000);
`,
      );
      const log = join(dir, 'tty.log');
      const tsx = new URL('../../../node_modules/.bin/tsx', import.meta.url).pathname;
      const r = spawnSync('script', ['-qfec', `${tsx} ${program}`, log], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      const out = readFileSync(log, 'utf8');
      expect(out).toContain('\u001b[?25l'); // the bar hid the cursor…
      expect(out).toContain('\u001b[?25h'); // …and the interrupt showed it again
      expect(out).toContain('\u001b[?7h'); // line wrapping back on
      expect(out).toMatch(/strata: interrupted; run the same command again to resume/);
      expect(r.status).toBe(130);
    },
  );
});
