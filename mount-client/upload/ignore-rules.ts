/**
 * Which local files an upload or sync skips: built-in default excludes, `--exclude` patterns, and
 * `.gitignore`, `.dockerignore` and `.strataignore` files at every directory level, with git's
 * semantics (a file's rules apply to paths relative to its own directory; deeper files add rules)
 * via the `ignore` library.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import ignore, { type Ignore } from 'ignore';

/** What a producer almost never wants in a shared bucket: dependencies, VCS data, builds, secrets. */
export const DEFAULT_EXCLUDES = [
  'node_modules/',
  '.git/',
  '*.log',
  '.env*',
  'dist/',
  'build/',
  '__pycache__/',
  'vendor/',
  '*.pyc',
  '.DS_Store',
  'Thumbs.db',
];

export const IGNORE_FILES = ['.gitignore', '.dockerignore', '.strataignore'];

export interface FilterOptions {
  /** Apply DEFAULT_EXCLUDES (default true; `--no-default-excludes` turns it off). */
  defaultExcludes?: boolean;
  /** Extra gitignore-style patterns (`--exclude`), relative to the root. */
  excludes?: string[];
  /** Read ignore files found in the tree (default true). */
  ignoreFiles?: boolean;
}

interface Layer {
  /** Directory (relative to the root, `''` for the root) the rules are relative to. */
  base: string;
  rules: Ignore;
}

/**
 * An immutable stack of rule layers for one directory. `child(dir)` reads that directory's ignore
 * files and returns the stack for its contents; `ignores(rel, isDir)` answers for a root-relative
 * path (`/`-separated).
 */
export class IgnoreStack {
  private constructor(
    private readonly root: string,
    private readonly layers: Layer[],
    private readonly readFiles: boolean,
  ) {}

  static async create(root: string, options: FilterOptions = {}): Promise<IgnoreStack> {
    const base = ignore();
    if (options.defaultExcludes ?? true) base.add(DEFAULT_EXCLUDES);
    if (options.excludes?.length) base.add(options.excludes);
    const stack = new IgnoreStack(root, [{ base: '', rules: base }], options.ignoreFiles ?? true);
    return stack.child('');
  }

  /** The stack for entries of directory `rel` (root-relative), adding its ignore files. */
  async child(rel: string): Promise<IgnoreStack> {
    if (!this.readFiles) return this;
    const rules = ignore();
    let found = false;
    for (const name of IGNORE_FILES) {
      try {
        rules.add(await readFile(join(this.root, rel, name), 'utf8'));
        found = true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return found ? new IgnoreStack(this.root, [...this.layers, { base: rel, rules }], this.readFiles) : this;
  }

  /** As in git, the deepest layer with a matching rule decides, so `!pattern` can re-include. */
  ignores(rel: string, isDir: boolean): boolean {
    for (let i = this.layers.length - 1; i >= 0; i--) {
      const layer = this.layers[i] as Layer;
      const sub = layer.base === '' ? rel : rel.slice(layer.base.length + 1);
      const verdict = layer.rules.test(isDir ? `${sub}/` : sub);
      if (verdict.ignored) return true;
      if (verdict.unignored) return false;
    }
    return false;
  }
}
