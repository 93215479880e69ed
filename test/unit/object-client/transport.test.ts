import { describe, expect, it } from 'vitest';
import type { ObjectVersion } from '../../../mount-client/block-cache/types.ts';
import {
  NotFoundError,
  PreconditionFailedError,
  S3ReadError,
  TransientError,
} from '../../../mount-client/object-client/errors.ts';
import { seededRandom, withFaults } from '../../../mount-client/object-client/faults.ts';
import {
  checkSameVersion,
  quotedEtag,
  totalFromContentRange,
} from '../../../mount-client/object-client/transport.ts';
import { classifyNetworkError, statusError } from '../../../mount-client/object-client/transport-undici.ts';

const object: ObjectVersion = { bucket: 'b', key: 'k', size: 100, etag: 'abc' };
const req = { object, start: 0, length: 10 };

describe('version checks', () => {
  it('accepts the pinned version and rejects a different etag, versionId or size', () => {
    expect(() => checkSameVersion(req, '"abc"', undefined, 100)).not.toThrow();
    expect(() => checkSameVersion(req, '"abd"', undefined, 100)).toThrow(PreconditionFailedError);
    expect(() => checkSameVersion(req, '"abc"', undefined, 101)).toThrow(PreconditionFailedError);
    const pinned = { ...req, object: { ...object, versionId: 'v1' } };
    expect(() => checkSameVersion(pinned, '"other"', 'v1', 100)).not.toThrow();
    expect(() => checkSameVersion(pinned, '"abc"', 'v2', 100)).toThrow(PreconditionFailedError);
    expect(quotedEtag('abc')).toBe('"abc"');
    expect(totalFromContentRange('bytes 0-9/100')).toBe(100);
  });
});

describe('HTTP status classification', () => {
  it('maps 412/416 → precondition, 404 → not found, 5xx/429 → transient, other 4xx → EIO', () => {
    expect(statusError(412, '', req)).toBeInstanceOf(PreconditionFailedError);
    expect(statusError(416, '', req)).toBeInstanceOf(PreconditionFailedError);
    expect(statusError(404, '', req)).toBeInstanceOf(NotFoundError);
    expect((statusError(503, '<Code>SlowDown</Code>', req) as TransientError).reason).toBe('throttled');
    expect((statusError(500, '', req) as TransientError).reason).toBe('http-5xx');
    expect(statusError(403, '<Code>AccessDenied</Code>', req)).toBeInstanceOf(S3ReadError);
    // An archived object is not a permission problem: the message says to restore it.
    const archived = statusError(403, '<Code>InvalidObjectState</Code>', req);
    expect(archived).toBeInstanceOf(S3ReadError);
    expect(archived.message).toMatch(/is archived .* restore it first \(aws s3api restore-object/);
    expect(archived.message).not.toMatch(/permissions/);
    // Any other 403 names both of its causes (mount clients have no s3:ListBucket by design).
    expect(statusError(403, '<Code>AccessDenied</Code>', req).message).toMatch(
      /may not read it .* or it was deleted since it was opened/,
    );
  });

  it('re-signs on a 403 for an expired presigned URL', () => {
    let invalidated = 0;
    const e = statusError(403, '<Code>AccessDenied</Code><Message>Request has expired</Message>', req, () => {
      invalidated++;
    });
    expect((e as TransientError).reason).toBe('expired-url');
    expect(invalidated).toBe(1);
  });

  it('classifies socket errors as retryable', () => {
    expect(classifyNetworkError(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toMatchObject({
      reason: 'reset',
    });
    expect(classifyNetworkError(Object.assign(new Error('x'), { code: 'ETIMEDOUT' }))).toMatchObject({
      reason: 'timeout',
    });
    expect(classifyNetworkError(new Error('dns'))).toMatchObject({ reason: 'network' });
  });
});

describe('fault injection', () => {
  it('injects the configured mix of 503s, timeouts and resets', async () => {
    let real = 0;
    const inner = {
      name: 'fake',
      get: async () => {
        real++;
        return Buffer.alloc(10);
      },
      close: async () => undefined,
    };
    const t = withFaults(inner, {
      errorRate: 0.1,
      timeoutRate: 0.1,
      resetRate: 0.1,
      timeoutMs: 0,
      random: seededRandom(1),
    });
    let ok = 0;
    let failed = 0;
    for (let i = 0; i < 1000; i++) {
      try {
        await t.get(req);
        ok++;
      } catch (e) {
        expect(e).toBeInstanceOf(TransientError);
        failed++;
      }
    }
    const { errors, timeouts, resets } = t.injected;
    expect(errors + timeouts + resets).toBe(failed);
    for (const n of [errors, timeouts, resets]) expect(n).toBeGreaterThan(50);
    expect(ok).toBeGreaterThan(600);
    expect(real).toBe(ok + resets);
  });
});
