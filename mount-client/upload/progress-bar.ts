/**
 * Terminal progress for uploads (files, bytes, rate, ETA) with cli-progress, drawn on stderr and
 * only on a TTY, so piped output and `--json` stay clean.
 */
import cliProgress from 'cli-progress';
import type { Progress } from './uploader.ts';

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export interface ProgressView {
  update(p: Progress): void;
  stop(): void;
}

/**
 * `interruptNote` is printed when Ctrl-C (or SIGTERM) ends the process while the bar is drawn: the
 * bar hides the cursor and turns off line wrapping, and a default SIGINT death left the terminal
 * that way, with no word on what happened to the transfer.
 */
export function progressView(enabled: boolean, interruptNote?: string): ProgressView {
  if (!enabled || !process.stderr.isTTY) return { update: () => {}, stop: () => {} };
  const started = Date.now();
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: '{bar} {percentage}% | {files} files | {bytes} | {rate} | ETA {eta_formatted}',
      hideCursor: true,
      // Redraws cost CPU that the upload needs; 5 per second reads as smooth.
      fps: 5,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  let startedBar = false;
  const onSignal = (signal: NodeJS.Signals) => {
    bar.stop();
    process.stderr.write(`\nstrata: interrupted${interruptNote ? `; ${interruptNote}` : ''}\n`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  return {
    update(p) {
      const secs = Math.max(0.001, (Date.now() - started) / 1000);
      const payload = {
        files: `${p.filesDone}/${p.filesTotal}`,
        bytes: `${formatBytes(p.bytesDone)}/${formatBytes(p.bytesTotal)}`,
        rate: `${formatBytes(p.bytesDone / secs)}/s`,
      };
      if (!startedBar) {
        bar.start(Math.max(1, p.bytesTotal), p.bytesDone, payload);
        startedBar = true;
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
      } else {
        bar.setTotal(Math.max(1, p.bytesTotal));
        bar.update(Math.min(p.bytesDone, p.bytesTotal), payload);
      }
    },
    stop() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      if (startedBar) bar.stop();
    },
  };
}
