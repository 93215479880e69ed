import { describe, expect, it } from 'vitest';
import type { Entry } from '../../../../functions/core/api-types.ts';
import { NotFoundError, ValidationError } from '../../../../functions/core/errors.ts';
import { listAll } from '../../../../mount-client/cli/commands/ls.ts';

const entry = (name: string): Entry =>
  ({ path: `/d/${name}`, name, type: 'file', size: 1, mtime: '' }) as Entry;

/** A /v1/list that answers from pages (or fails), counting requests. */
function api(answer: (cursor: string | undefined) => unknown) {
  const calls: Array<Record<string, unknown>> = [];
  return {
    calls,
    async request(_m: string, _p: string, o?: { query?: Record<string, unknown> }) {
      calls.push(o?.query ?? {});
      const r = answer(o?.query?.cursor as string | undefined);
      if (r instanceof Error) throw r;
      return r as never;
    },
  };
}

describe('strata ls', () => {
  it('follows nextCursor through every page', async () => {
    const fake = api((c) => (c ? { entries: [entry('b')] } : { entries: [entry('a')], nextCursor: 'x' }));
    expect((await listAll(fake as never, '/d')).map((e) => e.name)).toEqual(['a', 'b']);
    expect(fake.calls.map((q) => q.cursor)).toEqual([undefined, 'x']);
  });

  it('a file path says to use `strata stat` (the API answer names /v1/resolve)', async () => {
    const fake = api(() => new ValidationError('not a directory: /d/f is a file; use /v1/resolve'));
    await expect(listAll(fake as never, '/d/f')).rejects.toThrow(
      '/d/f is a file, not a directory; use `strata stat /d/f`',
    );
  });

  it('other errors pass through unchanged', async () => {
    const fake = api(() => new NotFoundError('directory not found: /nope'));
    await expect(listAll(fake as never, '/nope')).rejects.toThrow('directory not found: /nope');
  });
});
