/**
 * The hidden `/.by-date/` view: `/.by-date/` lists the dates of /v1/dates, and
 * `/.by-date/YYYY-MM-DD/<path>` mirrors the tree of the files listed under that date, so a date
 * directory can be browsed, `find`-ed and read like the main tree. Each entry stands for its real
 * path (`Node.target`); opening it opens the real file.
 *
 * A date's listing is loaded whole (paged) the first time any path under it is touched and kept
 * in an LRU bounded by entry count. Any change in the journal drops the views, since a change
 * does not say which date it moved a file in or out of.
 */
import { LRUCache } from 'lru-cache';
import { NotFoundError } from '../../functions/core/errors.ts';
import { joinPath, parentOf } from '../../functions/core/paths.ts';
import type { IndexApi } from '../metadata/index-api.ts';
import { type Node, nodeFromEntry } from '../metadata/node.ts';
import { Singleflight } from '../metadata/singleflight.ts';

export const BY_DATE_ROOT = '/.by-date';
const DATE = /^\d{4}-\d{2}-\d{2}$/;

interface DayTree {
  /** Directory path (relative to the date, `/`-rooted) → children by name. */
  dirs: Map<string, Map<string, Node>>;
  size: number;
}

export class ByDateView {
  private dates?: Node[];
  private readonly days: LRUCache<string, DayTree>;
  private readonly loads = new Singleflight<DayTree>();
  private epoch = 0;

  constructor(
    private readonly api: IndexApi,
    /** Total entries across cached days; 500,000 keeps the view's heap use near 150 MB at worst. */
    maxEntries = 500_000,
  ) {
    this.days = new LRUCache({ maxSize: maxEntries, sizeCalculation: (d) => Math.max(1, d.size) });
  }

  static owns(path: string): boolean {
    return path === BY_DATE_ROOT || path.startsWith(`${BY_DATE_ROOT}/`);
  }

  async stat(path: string): Promise<Node> {
    if (path === BY_DATE_ROOT) return { path, type: 'dir', size: 0, mtimeMs: 0 };
    const { date, rest } = split(path);
    const tree = await this.day(date);
    if (rest === '/') return { path, type: 'dir', size: 0, mtimeMs: Date.parse(date) || 0 };
    const node = tree.dirs.get(parentOf(rest))?.get(rest.slice(rest.lastIndexOf('/') + 1));
    if (!node) throw new NotFoundError(`no such file or directory: ${path}`);
    return { ...node, path };
  }

  async readdir(path: string): Promise<Node[]> {
    if (path === BY_DATE_ROOT) {
      if (!this.dates) {
        const epoch = this.epoch;
        const res = await this.api.dates();
        const nodes = res.dates.map(
          (d): Node => ({
            path: joinPath(BY_DATE_ROOT, d.date),
            type: 'dir',
            size: d.bytes,
            mtimeMs: Date.parse(d.date) || 0,
          }),
        );
        if (epoch !== this.epoch) return nodes;
        this.dates = nodes;
      }
      return this.dates;
    }
    const { date, rest } = split(path);
    const children = (await this.day(date)).dirs.get(rest);
    if (!children) throw new NotFoundError(`no such directory: ${path}`);
    return [...children.values()].map((n) => ({
      ...n,
      path: joinPath(path, n.path.slice(n.path.lastIndexOf('/') + 1)),
    }));
  }

  invalidate(): void {
    this.epoch++;
    this.dates = undefined;
    this.days.clear();
  }

  clear(): void {
    this.invalidate();
  }

  /** Cached days, the entries they hold (bounded by maxEntries) and loads in flight. */
  stats(): { days: number; entries: number; loading: number } {
    return { days: this.days.size, entries: this.days.calculatedSize, loading: this.loads.size };
  }

  private day(date: string): Promise<DayTree> {
    const cached = this.days.get(date);
    if (cached) return Promise.resolve(cached);
    return this.loads.do(date, async () => {
      const epoch = this.epoch;
      const tree: DayTree = { dirs: new Map([['/', new Map()]]), size: 0 };
      let cursor: string | undefined;
      do {
        const page = await this.api.byDate(date, cursor);
        for (const e of page.entries) add(tree, nodeFromEntry(e));
        cursor = page.nextCursor;
      } while (cursor);
      if (tree.size === 0) throw new NotFoundError(`no files are listed under ${date}`);
      if (epoch === this.epoch) this.days.set(date, tree);
      return tree;
    });
  }
}

function split(path: string): { date: string; rest: string } {
  const tail = path.slice(BY_DATE_ROOT.length + 1);
  const slash = tail.indexOf('/');
  const date = slash < 0 ? tail : tail.slice(0, slash);
  if (!DATE.test(date)) throw new NotFoundError(`${path}: /.by-date/ holds YYYY-MM-DD directories only`);
  return { date, rest: slash < 0 ? '/' : tail.slice(slash) };
}

/**
 * Adds a file and its missing ancestor directories to a day's tree. Paths inside keep real names.
 * A file and a directory of one name (a key `a` next to keys under `a/`, written straight to S3):
 * the directory wins, as in the main tree (metadata-cache.ts), in whichever order they arrive.
 */
function add(tree: DayTree, file: Node): void {
  tree.size++;
  const real = file.path;
  let dir = '/';
  const segments = real.slice(1).split('/');
  for (let i = 0; i < segments.length; i++) {
    const name = segments[i] as string;
    const here = joinPath(dir, name);
    const children = tree.dirs.get(dir) as Map<string, Node>;
    if (i === segments.length - 1) {
      if (children.get(name)?.type !== 'dir') children.set(name, { ...file, path: here, target: real });
    } else {
      if (children.get(name)?.type !== 'dir') {
        children.set(name, { path: here, type: 'dir', size: 0, mtimeMs: file.mtimeMs });
        tree.dirs.set(here, new Map());
        tree.size++;
      }
      const d = children.get(name) as Node;
      d.size += file.size;
    }
    dir = here;
  }
}
