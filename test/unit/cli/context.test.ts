import { describe, expect, it } from 'vitest';
import { NotFoundError, UnauthorizedError, UnavailableError } from '../../../functions/core/errors.ts';
import type { CliConfig } from '../../../mount-client/cli/config.ts';
import { describeFailure } from '../../../mount-client/cli/context.ts';

const fromDevJson: CliConfig = {
  apiUrl: 'http://127.0.0.1:1',
  token: 'stk_secret',
  source: { apiUrl: '/w/.strata/dev.json', token: 'env STRATA_TOKEN' },
  devPath: '/w/.strata/dev.json',
};

describe('describeFailure (the line `strata` prints when a command fails)', () => {
  it('says where a rejected token came from and how to pass another, never the token', () => {
    const line = describeFailure(
      new UnauthorizedError('unknown token: it was never issued here'),
      fromDevJson,
    );
    expect(line).toBe(
      'unknown token: it was never issued here (token from env STRATA_TOKEN; pass --token or set STRATA_TOKEN)',
    );
    expect(line).not.toContain('stk_secret');
  });

  it('points an unreachable API from dev.json at `npm start` and at --api-url', () => {
    const err = new UnavailableError(
      'cannot reach the Strata API at http://127.0.0.1:1 (ECONNREFUSED); is it running?',
    );
    expect(describeFailure(err, fromDevJson)).toMatch(
      /\(API URL from \/w\/\.strata\/dev\.json; start that stack with `npm start`, or pass --api-url or set STRATA_API_URL\)$/,
    );
    const flag = { ...fromDevJson, source: { ...fromDevJson.source, apiUrl: 'flag' } };
    expect(describeFailure(err, flag)).toMatch(
      /\(API URL from --api-url; pass --api-url or set STRATA_API_URL\)$/,
    );
  });

  it('leaves other errors, and errors before any config was loaded, as they are', () => {
    expect(describeFailure(new NotFoundError('no reconcile run "x"'), fromDevJson)).toBe(
      'no reconcile run "x"',
    );
    expect(describeFailure(new UnauthorizedError('nope'), undefined)).toBe('nope');
  });
});

describe('describeFailure of a missing path', () => {
  it('says where to look: the parent directory', () => {
    expect(describeFailure(new NotFoundError('not found: /datasets/a b.csv'), fromDevJson)).toBe(
      'not found: /datasets/a b.csv; see what is there with `strata ls /datasets`',
    );
    expect(describeFailure(new NotFoundError('directory not found: /tmp-rm'), fromDevJson)).toBe(
      'directory not found: /tmp-rm; see what is there with `strata ls /`',
    );
  });
});
