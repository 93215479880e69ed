/** Files under a directory (recursively) whose names end with `suffix`: for the observability tests. */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export function filesUnder(dir: string, suffix: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const f = join(dir, e);
    if (statSync(f).isDirectory()) return filesUnder(f, suffix);
    return f.endsWith(suffix) ? [f] : [];
  });
}
