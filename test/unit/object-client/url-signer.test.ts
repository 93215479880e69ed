import { describe, expect, it } from 'vitest';
import type { ObjectVersion } from '../../../mount-client/block-cache/types.ts';
import { UrlSigner } from '../../../mount-client/object-client/url-signer.ts';

const MIN = 60_000;

describe('UrlSigner in presign mode (on-prem, URLs from the API)', () => {
  it('uses the URL resolved at open, re-signs through the API before it expires, and after a refusal', async () => {
    // Prepare: a version opened with a URL valid for 5 minutes, and a fake clock.
    let now = 1_000_000;
    const calls: ObjectVersion[] = [];
    const signer = new UrlSigner(
      {
        presign: async (v) => {
          calls.push(v);
          return { url: `https://s3/fresh-${calls.length}`, expiresAt: now + 5 * MIN };
        },
      },
      () => now,
    );
    const v: ObjectVersion = {
      bucket: 'b',
      key: 'data/x',
      size: 10,
      etag: 'e1',
      url: 'https://s3/from-open',
      urlExpiresAt: now + 5 * MIN,
    };

    // Act + Assess: the URL from open() serves while it has more than the refresh margin left.
    expect(await signer.urlFor(v)).toBe('https://s3/from-open');
    now += 3 * MIN;
    expect(await signer.urlFor(v)).toBe('https://s3/from-open');
    expect(calls).toHaveLength(0);

    // Within a minute of expiry it asks the API again, before any request could fail.
    now += 61_000;
    expect(await signer.urlFor(v)).toBe('https://s3/fresh-1');
    expect(calls).toHaveLength(1);

    // Concurrent block reads of one version share one re-sign.
    now += 5 * MIN;
    const urls = await Promise.all([signer.urlFor(v), signer.urlFor(v), signer.urlFor(v)]);
    expect(new Set(urls)).toEqual(new Set(['https://s3/fresh-2']));
    expect(calls).toHaveLength(2);

    // A URL the server refused (403 on expiry/revocation) is dropped and re-signed.
    signer.invalidate(v);
    expect(await signer.urlFor(v)).toBe('https://s3/fresh-3');
  });
});
