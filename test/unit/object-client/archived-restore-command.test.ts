/**
 * Review finding (session 5): the message for an archived object (403 InvalidObjectState) hands
 * the operator a restore command with the key wrapped in single quotes as is. A key holding a
 * quote (paths allow `'`, and anyone writing to the bucket chooses keys) broke out of the quoting:
 * pasted into a shell, `it's; touch x; '` ran `touch x`. A version-pinned read also restored the
 * current version instead of the one the mount reads. The command is now shell-quoted and names
 * the version.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { statusError } from '../../../mount-client/object-client/transport-undici.ts';

/** The argv a POSIX shell gives `aws` for the command in the message (aws stubbed to print it). */
function argvOf(message: string): string[] {
  const m = /\((aws s3api restore-object .*)\), then read it again$/s.exec(message);
  if (!m) throw new Error(`no restore command in: ${message}`);
  const out = execFileSync('sh', ['-c', `aws() { printf '%s\\0' "$@"; }; ${m[1]}`], { encoding: 'utf8' });
  return out.split('\0').slice(0, -1);
}

describe('restore command for an archived object', () => {
  it('passes a hostile key through the shell as one argument, and the pinned version', () => {
    // Prepare
    const key = "data/it's; touch /tmp/strata-pwned-$$; echo '$(id)`id`\\.bin";
    const object = { bucket: 'b', key, size: 10, etag: 'e', versionId: 'v1' };
    // Act
    const err = statusError(403, '<Code>InvalidObjectState</Code>', { object, start: 0, length: 10 });
    // Assess
    expect(argvOf(err.message)).toEqual([
      's3api',
      'restore-object',
      '--bucket',
      'b',
      '--key',
      key,
      '--version-id',
      'v1',
      '--restore-request',
      'Days=7',
    ]);
  });

  it('names no version for an etag-pinned read', () => {
    const object = { bucket: 'b', key: 'data/plain.bin', size: 10, etag: 'e' };
    const err = statusError(403, '<Code>InvalidObjectState</Code>', { object, start: 0, length: 10 });
    expect(argvOf(err.message)).toEqual([
      's3api',
      'restore-object',
      '--bucket',
      'b',
      '--key',
      'data/plain.bin',
      '--restore-request',
      'Days=7',
    ]);
  });
});
