import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/**
 * Host requirements of the suites that need more than Node.
 *
 * On a developer machine a missing piece skips the suite with one line saying what is missing and
 * how to install it. Under CI (`CI=true`) nothing may skip for that reason: the check throws, so a
 * CI machine that lost `fusermount` or `redis-server` fails loudly instead of going green.
 */
export type Requirement = 'fuse' | 'redis-server';

const hints: Record<Requirement, () => string | undefined> = {
  fuse: () => {
    if (!existsSync('/dev/fuse'))
      return '/dev/fuse is absent (load the fuse module or run the container with --device /dev/fuse)';
    if (!hasLib('libfuse.so.2')) return 'libfuse2 is not installed (apt-get install -y libfuse2)';
    if (!onPath('fusermount') && !onPath('fusermount3'))
      return 'fusermount is not on PATH (apt-get install -y fuse3)';
    return undefined;
  },
  'redis-server': () =>
    onPath('redis-server') || process.env.REDIS_URL
      ? undefined
      : 'redis-server is not on PATH and REDIS_URL is unset (apt-get install -y redis-server)',
};

function onPath(bin: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function hasLib(name: string): boolean {
  try {
    return execFileSync('ldconfig', ['-p'], { encoding: 'utf8' }).includes(name);
  } catch {
    return ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/lib/x86_64-linux-gnu'].some((d) =>
      existsSync(`${d}/${name}`),
    );
  }
}

const reported = new Set<string>();

/** Returns a reason to skip, or undefined when every requirement is met. Throws under CI. */
export function missing(...reqs: Requirement[]): string | undefined {
  for (const req of reqs) {
    const reason = hints[req]();
    if (!reason) continue;
    if (process.env.CI === 'true') throw new Error(`CI=true and a test requirement is missing: ${reason}`);
    if (!reported.has(reason)) {
      reported.add(reason);
      console.warn(`[skip] ${reason}`);
    }
    return reason;
  }
  return undefined;
}
