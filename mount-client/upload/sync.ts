/**
 * One sync pass and the watch loop: upload what changed, optionally delete remote files that no
 * longer exist locally. Shared by the CLI and the tests.
 */
import { relative, resolve, sep } from 'node:path';
import { watch } from 'chokidar';
import type { ApiClient } from '../api/client.ts';
import { type FilterOptions, IgnoreStack } from './ignore-rules.ts';
import { deleteRemote, listRemoteFiles } from './remote.ts';
import { joinRemote, type LocalFile, scanDirectory } from './scan.ts';
import type { Uploader, UploadSummary } from './uploader.ts';

export interface SyncPlan {
  upload: LocalFile[];
  /** Remote files with no local counterpart (deleted only with `delete`). */
  remoteOnly: string[];
  ignored: string[];
  /** Local entries whose names are not UTF-8 (ScanResult.unreadable): reported as failures. */
  unreadable: Array<{ local: string; reason: string }>;
}

export async function planSync(
  api: ApiClient,
  localDir: string,
  remoteDir: string,
  filter: FilterOptions,
  withDeletes: boolean,
): Promise<SyncPlan> {
  const scan = await scanDirectory(localDir, remoteDir, filter);
  let remoteOnly: string[] = [];
  if (withDeletes) {
    const remote = await listRemoteFiles(api, remoteDir);
    const local = new Set(scan.files.map((f) => f.remote));
    remoteOnly = [...remote.keys()].filter((p) => !local.has(p)).sort();
  }
  return { upload: scan.files, remoteOnly, ignored: scan.ignored, unreadable: scan.unreadable };
}

export interface DeleteResult {
  deleted: string[];
  failed: Array<{ path: string; reason: string }>;
}

export async function applyDeletes(api: ApiClient, paths: string[]): Promise<DeleteResult> {
  const out: DeleteResult = { deleted: [], failed: [] };
  for (const p of paths) {
    try {
      await deleteRemote(api, p);
      out.deleted.push(p);
    } catch (err) {
      out.failed.push({ path: p, reason: (err as Error).message });
    }
  }
  return out;
}

export interface WatchOptions {
  api: ApiClient;
  uploader: Uploader;
  localDir: string;
  remoteDir: string;
  filter: FilterOptions;
  /** Delete remote files when their local file is removed. */
  delete: boolean;
  /**
   * Quiet period before a batch of changes is uploaded: editors and build tools write a file in
   * several steps (temp file, rename, touch); 300 ms lets them settle without feeling laggy.
   */
  debounceMs?: number;
  onPass?: (summary: UploadSummary, deletes: DeleteResult) => void;
  onError?: (err: unknown) => void;
}

/** Watches `localDir` and uploads changes as they happen. Resolves to a stop function once ready. */
export async function watchAndSync(o: WatchOptions): Promise<() => Promise<void>> {
  const root = resolve(o.localDir);
  const debounceMs = o.debounceMs ?? 300;
  const changed = new Set<string>();
  const removed = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let running = Promise.resolve();
  let rules = await IgnoreStack.create(root, o.filter);
  const relOf = (abs: string) => relative(root, abs).split(sep).join('/');

  const flush = () => {
    const files = [...changed];
    const gone = [...removed];
    changed.clear();
    removed.clear();
    running = running.then(async () => {
      try {
        // Ignore files may have changed: rebuild the rules the watcher filters with.
        rules = await IgnoreStack.create(root, o.filter);
        // One scan per pass applies the nested ignore files exactly as a full sync would.
        const wanted = new Set(files);
        const batch = (await scanDirectory(root, o.remoteDir, o.filter)).files.filter((f) =>
          wanted.has(relOf(f.abs)),
        );
        const summary = await o.uploader.upload(batch);
        const deletes = o.delete
          ? await applyDeletes(
              o.api,
              gone.map((rel) => joinRemote(o.remoteDir, rel)),
            )
          : { deleted: [], failed: [] };
        o.onPass?.(summary, deletes);
      } catch (err) {
        o.onError?.(err);
      }
    });
  };
  const schedule = () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(flush, debounceMs);
  };

  const watcher = watch(root, {
    ignoreInitial: true,
    followSymlinks: false,
    ignored: (path: string, stats?: { isDirectory(): boolean }) => {
      const rel = relOf(path);
      return rel !== '' && !rel.startsWith('..') && rules.ignores(rel, stats?.isDirectory() ?? false);
    },
    // Wait until a file stops growing before uploading it.
    awaitWriteFinish: { stabilityThreshold: 200, pollInterval: 50 },
  });
  watcher.on('add', (p) => {
    changed.add(relOf(p));
    removed.delete(relOf(p));
    schedule();
  });
  watcher.on('change', (p) => {
    changed.add(relOf(p));
    schedule();
  });
  watcher.on('unlink', (p) => {
    changed.delete(relOf(p));
    removed.add(relOf(p));
    schedule();
  });
  await new Promise<void>((r) => watcher.once('ready', () => r()));
  return async () => {
    if (timer) clearTimeout(timer);
    await watcher.close();
    await running;
  };
}
