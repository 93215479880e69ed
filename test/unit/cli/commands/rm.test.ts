import { describe, expect, it } from 'vitest';
import { NotFoundError } from '../../../../functions/core/errors.ts';
import { deleteFile } from '../../../../mount-client/cli/commands/rm.ts';

/** An API whose DELETE /v1/files answers not found and whose /v1/resolve answers `resolved`. */
function api(resolved: unknown) {
  const calls: string[] = [];
  return {
    calls,
    async request(method: string, path: string) {
      calls.push(`${method} ${path}`);
      if (method === 'DELETE') throw new NotFoundError('not found: /ws');
      if (resolved instanceof Error) throw resolved;
      return resolved as never;
    },
  };
}

describe('strata rm', () => {
  it('a directory is named as one, with the way to its files (the API says "not found")', async () => {
    const fake = api({ path: '/ws', type: 'dir' });
    await expect(deleteFile(fake as never, '/ws')).rejects.toThrow(
      '/ws is a directory; strata rm deletes files (list them with `strata ls /ws`)',
    );
    expect(fake.calls).toEqual(['DELETE /v1/files', 'GET /v1/resolve']);
  });

  it('a path that does not exist stays "not found"', async () => {
    const fake = api(new NotFoundError('not found: /ws'));
    await expect(deleteFile(fake as never, '/ws')).rejects.toThrow('not found: /ws');
  });
});
