import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../../functions/core/errors.ts';
import { prepareCacheDir, recoverStaleMount, serveMetrics } from '../../mount-client/mount.ts';

const dir = mkdtempSync(join(tmpdir(), 'strata-preflight-'));
const file = join(dir, 'a-file');
writeFileSync(file, 'x');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const log = () => {};

describe('strata mount preflight', () => {
  it('refuses a mountpoint that is a file, saying to mount on a directory', async () => {
    const err = await recoverStaleMount(file, log).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toMatch(/is not a directory; mount on an empty directory/);
  });

  it('names a missing mountpoint and how to create it', async () => {
    await expect(recoverStaleMount(join(dir, 'absent'), log)).rejects.toThrow(
      /does not exist; create it with mkdir -p/,
    );
  });

  it('refuses a non-empty mountpoint (libfuse 2 only said "fuse failed"), naming what is in it', async () => {
    const full = join(dir, 'full');
    mkdirSync(full);
    writeFileSync(join(full, 'left-over'), '');
    await expect(recoverStaleMount(full, log)).rejects.toThrow(
      /full is not empty \(left-over\); mount on an empty directory/,
    );
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    await recoverStaleMount(empty, log);
  });

  it('creates a missing cache directory', async () => {
    await prepareCacheDir(join(dir, 'cache', 'nested'));
    expect(statSync(join(dir, 'cache', 'nested')).isDirectory()).toBe(true);
    await prepareCacheDir(join(dir, 'cache', 'nested')); // already there: fine
  });

  it("refuses a cache directory under /proc instead of hanging (Node's recursive mkdir loops there)", async () => {
    const err = await prepareCacheDir('/proc/strata-no-such/cache').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toMatch(
      /cannot use \/proc\/strata-no-such\/cache as the block cache \(ENOENT\): pass --cache-dir/,
    );
  });

  it('refuses a cache directory it cannot create, pointing at --cache-dir', async () => {
    const err = await prepareCacheDir(join(file, 'cache')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toMatch(
      /cannot use .*a-file\/cache as the block cache \(ENOTDIR\): pass --cache-dir/,
    );
    expect((err as Error).cause).toBeDefined();
  });
});

describe('strata mount --metrics-port', () => {
  it('a port in use says which and what to pass instead (was a bare EADDRINUSE)', async () => {
    const taken = await serveMetrics(0, () => ({}));
    try {
      const err = await serveMetrics(taken.port, () => ({})).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as Error).message).toBe(
        `--metrics-port ${taken.port} is already in use on 127.0.0.1; pick another port, or 0 for any free one (logged at start)`,
      );
    } finally {
      await new Promise((r) => taken.server.close(r));
    }
  });
});
