/**
 * Polling with a deadline for the real-FUSE tests: a mount, its cache and its log change
 * asynchronously, so a test waits for a condition — never for a length of time, never asserting one.
 */

/** Poll every 100 ms: often enough to keep a test short, rare enough to leave the mount the CPU. */
const POLL_MS = 100;

/**
 * Resolves with the first value `probe` returns other than undefined. A probe that throws has not
 * succeeded yet (the mount may still be starting, a file may not exist yet); after `ms` this
 * rejects, naming `what` and the probe's last error.
 */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const last =
        lastError === undefined ? '' : ` (last probe error: ${(lastError as Error).message ?? lastError})`;
      throw new Error(`timed out after ${ms} ms waiting for ${what}${last}`, { cause: lastError });
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
