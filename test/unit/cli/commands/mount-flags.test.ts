import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

describe('strata mount flag checks', () => {
  it('a bad --uid fails before the AWS credential probe and its notice', () => {
    const bin = new URL('../../../../bin/strata.js', import.meta.url).pathname;
    // No AWS credentials anywhere, so the probe would print its "--presign" notice if it ran.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_')));
    const r = spawnSync(
      process.execPath,
      [
        bin,
        'mount',
        '/nonexistent-mnt',
        '--uid',
        '-1',
        '--api-url',
        'http://127.0.0.1:1',
        '--token',
        'stk_x',
        '--region',
        'us-east-1',
      ],
      {
        encoding: 'utf8',
        env: {
          ...env,
          AWS_EC2_METADATA_DISABLED: 'true',
          HOME: '/nonexistent',
          STRATA_DEV_JSON: '/nonexistent',
        },
        timeout: 60_000,
      },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('strata: --uid must be an integer ≥ 0, got "-1"');
    expect(r.stderr).not.toContain('no AWS credentials found');
  });
});
