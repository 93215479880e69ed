/**
 * A cleanup registry for the comparison bench: every mount, child process and proxy registers how to
 * undo itself, and `runAll()` undoes everything in reverse order — on normal exit, on an error, and on
 * SIGINT/SIGTERM — so an interrupted bench never leaves a FUSE mount or a server behind.
 *
 * Each cleanup runs at most once and a failing one does not stop the others (a stuck unmount must
 * not leave the stack running). Failures are returned so the caller can report them.
 */

export type CleanupFn = () => void | Promise<void>;

export interface CleanupFailure {
  name: string;
  error: Error;
}

export class CleanupRegistry {
  private entries: Array<{ id: number; name: string; fn: CleanupFn }> = [];
  private nextId = 1;
  private running: Promise<CleanupFailure[]> | undefined;

  /** Registers `fn`; returns a function that runs it now (once) and unregisters it. */
  add(name: string, fn: CleanupFn): () => Promise<void> {
    const id = this.nextId++;
    this.entries.push({ id, name, fn });
    return async () => {
      const i = this.entries.findIndex((e) => e.id === id);
      if (i < 0) return;
      const [entry] = this.entries.splice(i, 1);
      await entry?.fn();
    };
  }

  /** Names of pending cleanups, oldest first. */
  pending(): string[] {
    return this.entries.map((e) => e.name);
  }

  /** Runs every pending cleanup, newest first; concurrent calls share one run. */
  runAll(): Promise<CleanupFailure[]> {
    this.running ??= (async () => {
      const failures: CleanupFailure[] = [];
      while (this.entries.length > 0) {
        const entry = this.entries.pop();
        if (!entry) break;
        try {
          await entry.fn();
        } catch (err) {
          failures.push({ name: entry.name, error: err instanceof Error ? err : new Error(String(err)) });
        }
      }
      this.running = undefined;
      return failures;
    })();
    return this.running;
  }

  /**
   * On SIGINT/SIGTERM: run all cleanups, then exit with 130/143. A second signal while cleaning up
   * exits at once (the user insists). Returns a function that removes the handlers.
   */
  installSignalHandlers(log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): () => void {
    let cleaningSince = 0;
    const handler = (signal: NodeJS.Signals) => {
      // One Ctrl-C arrives twice (from the terminal to the whole process group, and relayed by
      // npm/tsx), so only a signal a moment later means "stop cleaning up".
      if (cleaningSince > 0 && Date.now() - cleaningSince < 2000) return;
      if (cleaningSince > 0) {
        log(`${signal} again: exiting without finishing cleanup (pending: ${this.pending().join(', ')})`);
        process.exit(1);
      }
      cleaningSince = Date.now();
      log(`${signal}: unmounting and stopping everything the bench started…`);
      void this.runAll().then((failures) => {
        for (const f of failures) log(`cleanup of ${f.name} failed: ${f.error.message}`);
        process.exit(signal === 'SIGINT' ? 130 : 143);
      });
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
    return () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    };
  }
}
