import { describe, expect, it } from 'vitest';
import type { Entry } from '../../../functions/core/api-types.ts';
import { NotFoundError } from '../../../functions/core/errors.ts';
import { ByDateView } from '../../../mount-client/fs/by-date-view.ts';
import type { IndexApi } from '../../../mount-client/metadata/index-api.ts';

const file = (path: string, size: number): Entry => ({
  path,
  name: path.slice(path.lastIndexOf('/') + 1),
  type: 'file',
  size,
  mtime: '2024-05-02T10:00:00.000Z',
  etag: `e${size}`,
});

/** An index whose by-date listing of 2024-05-02 is `entries`, one page. */
function indexOf(entries: Entry[]): IndexApi {
  const unused = async (): Promise<never> => {
    throw new NotFoundError('not used by the by-date view');
  };
  return {
    resolve: unused,
    list: unused,
    dates: async () => ({ dates: [{ date: '2024-05-02', files: entries.length, bytes: 0 }] }),
    byDate: async (date) => ({ date, entries: date === '2024-05-02' ? entries : [] }),
    changes: async () => ({ changes: [], nextSince: 0, latest: 0 }),
  };
}

describe('ByDateView', () => {
  it('mirrors the tree of one day, with the real path as target', async () => {
    const view = new ByDateView(indexOf([file('/x/one.txt', 1), file('/x/y/two.txt', 2), file('/top', 3)]));
    const root = await view.readdir('/.by-date/2024-05-02');
    expect(root.map((n) => [n.path, n.type])).toEqual([
      ['/.by-date/2024-05-02/x', 'dir'],
      ['/.by-date/2024-05-02/top', 'file'],
    ]);
    expect(await view.stat('/.by-date/2024-05-02/x/y/two.txt')).toMatchObject({
      type: 'file',
      size: 2,
      target: '/x/y/two.txt',
    });
  });

  // A key `a` next to keys under `a/` (written straight to S3): with the file first, loading the
  // day used to fail with a TypeError (no children map for `a`), and with the directory first the
  // file replaced it in the listing while its children stayed unreachable.
  for (const order of ['file first', 'directory first'] as const) {
    it(`a file and a directory of one name show once, as the directory (${order})`, async () => {
      const clash = [file('/clash/a', 3), file('/clash/a/inner.txt', 4)];
      const view = new ByDateView(indexOf(order === 'file first' ? clash : [...clash].reverse()));
      const listed = await view.readdir('/.by-date/2024-05-02/clash');
      expect(listed.map((n) => [n.path, n.type])).toEqual([['/.by-date/2024-05-02/clash/a', 'dir']]);
      expect((await view.stat('/.by-date/2024-05-02/clash/a')).type).toBe('dir');
      expect((await view.readdir('/.by-date/2024-05-02/clash/a')).map((n) => n.path)).toEqual([
        '/.by-date/2024-05-02/clash/a/inner.txt',
      ]);
    });
  }
});
