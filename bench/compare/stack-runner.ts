/**
 * The local stack for the comparison bench, in its own process: FUSE clients under test talk to
 * the S3 emulator and the API, so hosting those in the bench process would deadlock the first
 * time anything waited on the kernel (the server could not answer while its loop was blocked).
 *
 * Usage: tsx bench/compare/stack-runner.ts <stateDir> [<public S3 endpoint>]
 * The public endpoint is what the API signs presigned URLs for: the bench points it at a proxy in
 * front of the emulator so `strata upload` pays the same injected S3 latency as `rclone copy`.
 *
 * Protocol: one JSON line on stdout once ready, `{"ready": DevJson}`; then one command per stdin
 * line — `drain` → `{"drained": true}` or `{"drainError": msg}` once the indexer has caught up.
 * stdin closing or SIGTERM stops the stack and exits.
 */
import { createInterface } from 'node:readline';
import { startStack } from '../../local/stack.ts';

const [stateDir, publicS3] = process.argv.slice(2);
if (!stateDir) {
  console.error('usage: stack-runner.ts <stateDir> [<public S3 endpoint>]');
  process.exit(2);
}

const stack = await startStack({
  stateDir,
  apiPort: 0,
  persist: false,
  // Scheduled jobs (reconcile, cleanup) would compete for the 2 cores mid-measurement.
  scheduleIntervalMs: 0,
  env: {
    ...(publicS3 ? { STRATA_S3_ENDPOINT: publicS3 } : {}),
    // fauxqs refuses request bodies over 11 MiB: multipart from 8 MiB, as rclone is told too.
    STRATA_MULTIPART_THRESHOLD: String(8 * 1024 * 1024),
  },
  log: (line) => process.stderr.write(`${line}\n`),
});
// The stack's own S3 client uses the emulator directly; dev.s3Endpoint is the emulator too.
process.stdout.write(`${JSON.stringify({ ready: stack.dev })}\n`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await stack.stop().catch((err: Error) => process.stderr.write(`stack stop: ${err.message}\n`));
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line.trim() === 'drain') {
    stack.drain(300_000).then(
      () => process.stdout.write(`${JSON.stringify({ drained: true })}\n`),
      (err: Error) => process.stdout.write(`${JSON.stringify({ drainError: err.message })}\n`),
    );
  }
});
rl.on('close', () => void stop());
