/**
 * Walks local directories into the list of files to upload, applying the ignore rules. Symbolic
 * links are not followed (a link out of the tree, or a cycle, must not upload surprises); they are
 * reported as skipped.
 */
import type { Dirent } from 'node:fs';
import { opendir, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { ValidationError } from '../../functions/core/errors.ts';
import { type FilterOptions, IgnoreStack } from './ignore-rules.ts';

export interface LocalFile {
  /** Absolute local path. */
  abs: string;
  /** Remote path (NFC, absolute, `/`-separated). */
  remote: string;
  size: number;
  mtimeMs: number;
}

export interface ScanResult {
  files: LocalFile[];
  /** Root-relative paths skipped by rules (directories count once), for --dry-run and --json. */
  ignored: string[];
  symlinks: string[];
  /**
   * Entries whose local name is not valid UTF-8 (Node decodes it with U+FFFD, so the name it gives
   * opens nothing and no remote path could be derived): not uploaded, reported as failures.
   */
  unreadable: Array<{ local: string; reason: string }>;
}

/** Why an entry with an undecodable name is left out, and how to fix it. */
const UNDECODABLE =
  'its name is not valid UTF-8 (Strata paths are Unicode); rename it, e.g. with `convmv -f latin1 -t utf8`';

export function joinRemote(dir: string, rel: string): string {
  const d = dir === '/' ? '' : dir.replace(/\/+$/, '');
  return `${d}/${rel}`.normalize('NFC');
}

/** Scans one directory tree; every file maps to `remoteDir/<relative path>`. */
export async function scanDirectory(
  root: string,
  remoteDir: string,
  options: FilterOptions = {},
): Promise<ScanResult> {
  const out: ScanResult = { files: [], ignored: [], symlinks: [], unreadable: [] };
  const absRoot = resolve(root);
  const walk = async (rel: string, rules: IgnoreStack): Promise<void> => {
    const dir = await opendir(join(absRoot, rel));
    const entries: Dirent[] = [];
    for await (const e of dir) entries.push(e);
    // Stable order: byte order of names, like the index lists them.
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const childRel = rel ? `${rel}/${e.name}` : e.name;
      if (e.name.includes('\uFFFD')) {
        // Checked before the ignore rules: a rule cannot be written for a name nobody can type,
        // and stat() of the decoded name would fail the whole scan with ENOENT.
        out.unreadable.push({ local: join(absRoot, childRel), reason: UNDECODABLE });
        continue;
      }
      if (e.isSymbolicLink()) {
        out.symlinks.push(childRel);
        continue;
      }
      const isDir = e.isDirectory();
      if (rules.ignores(childRel, isDir)) {
        out.ignored.push(isDir ? `${childRel}/` : childRel);
        continue;
      }
      if (isDir) await walk(childRel, await rules.child(childRel));
      else if (e.isFile()) {
        const st = await stat(join(absRoot, childRel));
        out.files.push({
          abs: join(absRoot, childRel),
          remote: joinRemote(remoteDir, childRel),
          size: st.size,
          mtimeMs: st.mtimeMs,
        });
      }
    }
  };
  await walk('', await IgnoreStack.create(absRoot, options));
  return out;
}

/**
 * Expands `strata upload` arguments: a file maps to `remoteDir/<name>`, a directory to
 * `remoteDir/<dir name>/…` (like `cp -r`), with the ignore rules applied inside directories.
 */
export async function scanArguments(
  locals: string[],
  remoteDir: string,
  options: FilterOptions = {},
): Promise<ScanResult> {
  const out: ScanResult = { files: [], ignored: [], symlinks: [], unreadable: [] };
  for (const local of locals) {
    const abs = resolve(local);
    const st = await stat(abs).catch((err: NodeJS.ErrnoException) => {
      // A mistyped argument fails the whole command before anything is sent: say which one.
      throw new ValidationError(
        err.code === 'ENOENT'
          ? `cannot upload ${local}: no such file or directory (check the path; directories upload recursively)`
          : `cannot upload ${local}: ${err.code ?? err.message}`,
        { cause: err },
      );
    });
    const name = basename(abs);
    if (st.isDirectory()) {
      const sub = await scanDirectory(abs, joinRemote(remoteDir, name), options);
      out.files.push(...sub.files);
      out.ignored.push(...sub.ignored.map((p) => `${name}/${p}`));
      out.symlinks.push(...sub.symlinks.map((p) => `${name}/${p}`));
      out.unreadable.push(...sub.unreadable);
    } else if (st.isFile()) {
      out.files.push({ abs, remote: joinRemote(remoteDir, name), size: st.size, mtimeMs: st.mtimeMs });
    } else {
      throw new Error(`${local} is neither a file nor a directory`);
    }
  }
  return out;
}
