/**
 * Where a GET URL for an object version comes from.
 *
 * IAM mode (EC2): the URL is presigned locally with credentials from the AWS default provider chain
 * (instance profile, env, SSO, ...), once per object version and reused until shortly before it
 * expires. Signing per version instead of per request keeps SigV4 off the hot path (a 1 GiB file is
 * 128 blocks, one signature), and the request itself goes straight through undici.
 * Presign mode (on-prem, no AWS credentials): the API hands out short-lived URLs; a 403 on an
 * expired URL invalidates it and the retry asks again.
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { LRUCache } from 'lru-cache';
import { versionTag } from '../block-cache/block-key.ts';
import { Singleflight } from '../block-cache/singleflight.ts';
import type { ObjectVersion } from '../block-cache/types.ts';

export type PresignFn = (v: ObjectVersion) => Promise<{ url: string; expiresAt: number }>;

/** 15 min: long enough to sign once per open file, short enough that a leaked URL dies quickly. */
const LOCAL_EXPIRES_S = 15 * 60;
/** Re-sign this long before expiry so a URL never expires between signing and the request. */
const REFRESH_MARGIN_MS = 60_000;

export class UrlSigner {
  private readonly signing = new Singleflight<string>();
  private readonly cache = new LRUCache<string, { url: string; expiresAt: number }>({ max: 10_000 });

  constructor(
    private readonly source: { s3: S3Client } | { presign: PresignFn },
    private readonly now: () => number = Date.now,
  ) {}

  private cacheKey(v: ObjectVersion): string {
    return `${v.bucket}\0${v.key}\0${versionTag(v)}`;
  }

  async urlFor(v: ObjectVersion): Promise<string> {
    const k = this.cacheKey(v);
    const hit = this.cache.get(k);
    if (hit && hit.expiresAt - REFRESH_MARGIN_MS > this.now()) return hit.url;
    // The blocks of one file are requested together: one signing (one API call) for all of them.
    return this.signing.do(k, () => this.sign(v, k, hit));
  }

  private async sign(v: ObjectVersion, k: string, hit: { expiresAt: number } | undefined): Promise<string> {
    let entry: { url: string; expiresAt: number };
    if (v.url && v.urlExpiresAt && v.urlExpiresAt - REFRESH_MARGIN_MS > this.now() && !hit) {
      entry = { url: v.url, expiresAt: v.urlExpiresAt };
    } else if ('presign' in this.source) {
      entry = await this.source.presign(v);
    } else {
      const url = await getSignedUrl(
        this.source.s3,
        new GetObjectCommand({
          Bucket: v.bucket,
          Key: v.key,
          ...(v.versionId ? { VersionId: v.versionId } : {}),
        }),
        { expiresIn: LOCAL_EXPIRES_S },
      );
      entry = { url, expiresAt: this.now() + LOCAL_EXPIRES_S * 1000 };
    }
    this.cache.set(k, entry);
    return entry.url;
  }

  /** Drops a URL the server refused (expired or revoked); the next urlFor signs a fresh one. */
  invalidate(v: ObjectVersion): void {
    // An expired marker (not a delete) so urlFor also skips the URL carried on the version itself.
    this.cache.set(this.cacheKey(v), { url: '', expiresAt: 0 });
  }
}
