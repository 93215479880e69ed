/**
 * S3 side of reconciliation: listing pages (ListObjectsV2, or ListObjectVersions when the bucket is
 * versioned, so the index can be compared on versionId too), delimiter listings for shard planning,
 * and HeadObject for refreshes.
 */
import {
  GetBucketVersioningCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { UnavailableError } from '../../core/errors.ts';
import type { HeadResult, ListingPage, ReconcileListing } from '../../core/reconcile/ports.ts';
import type { ListedObject } from '../../core/reconcile/types.ts';

export interface S3ListingOptions {
  bucket: string;
  /** Force the listing API; by default GetBucketVersioning decides once per instance. */
  versioned?: boolean;
}

export class S3ReconcileListing implements ReconcileListing {
  private versioned: Promise<boolean> | undefined;
  constructor(
    private readonly s3: S3Client,
    private readonly options: S3ListingOptions,
  ) {
    if (options.versioned !== undefined) this.versioned = Promise.resolve(options.versioned);
  }

  /** Enabled or Suspended: a suspended bucket still holds versions whose ids the index may carry. */
  isVersioned(): Promise<boolean> {
    this.versioned ??= this.s3
      .send(new GetBucketVersioningCommand({ Bucket: this.options.bucket }))
      .then((r) => r.Status === 'Enabled' || r.Status === 'Suspended')
      // Emulators without the versioning API hold unversioned buckets.
      .catch(() => false);
    return this.versioned;
  }

  async listPage(request: {
    prefix: string;
    startAfter?: string;
    continuationToken?: string;
    maxKeys: number;
  }): Promise<ListingPage> {
    try {
      return (await this.isVersioned())
        ? await this.listVersionsPage(request)
        : await this.listObjectsPage(request);
    } catch (err) {
      throw new UnavailableError(
        `listing s3://${this.options.bucket}/${request.prefix} failed: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  private async listObjectsPage(request: {
    prefix: string;
    startAfter?: string;
    continuationToken?: string;
    maxKeys: number;
  }): Promise<ListingPage> {
    const out = await this.s3.send(
      new ListObjectsV2Command({
        Bucket: this.options.bucket,
        Prefix: request.prefix,
        MaxKeys: request.maxKeys,
        ...(request.continuationToken ? { ContinuationToken: request.continuationToken } : {}),
        ...(!request.continuationToken && request.startAfter ? { StartAfter: request.startAfter } : {}),
      }),
    );
    const objects: ListedObject[] = (out.Contents ?? []).map((o) => ({
      key: o.Key as string,
      etag: o.ETag ?? '',
      size: o.Size ?? 0,
      ...(o.LastModified ? { lastModified: o.LastModified } : {}),
    }));
    return out.IsTruncated && out.NextContinuationToken
      ? { objects, nextContinuationToken: out.NextContinuationToken }
      : { objects };
  }

  /**
   * Versioned buckets: the current version of each key is the one with IsLatest that is not a
   * delete marker (a key whose latest entry is a delete marker is deleted). The continuation token
   * is our own: the key and version-id markers S3 returned, as JSON.
   */
  private async listVersionsPage(request: {
    prefix: string;
    startAfter?: string;
    continuationToken?: string;
    maxKeys: number;
  }): Promise<ListingPage> {
    let keyMarker = request.startAfter;
    let versionIdMarker: string | undefined;
    if (request.continuationToken) {
      const t = JSON.parse(request.continuationToken) as { k?: string; v?: string };
      keyMarker = t.k;
      versionIdMarker = t.v;
    }
    const out = await this.s3.send(
      new ListObjectVersionsCommand({
        Bucket: this.options.bucket,
        Prefix: request.prefix,
        MaxKeys: request.maxKeys,
        ...(keyMarker ? { KeyMarker: keyMarker } : {}),
        ...(versionIdMarker ? { VersionIdMarker: versionIdMarker } : {}),
      }),
    );
    const objects: ListedObject[] = [];
    for (const v of out.Versions ?? []) {
      if (!v.IsLatest || !v.Key) continue;
      objects.push({
        key: v.Key,
        etag: v.ETag ?? '',
        size: v.Size ?? 0,
        ...(v.LastModified ? { lastModified: v.LastModified } : {}),
        ...(v.VersionId && v.VersionId !== 'null' ? { versionId: v.VersionId } : {}),
      });
    }
    // Versions of one key are contiguous and a page may split them: the page's keys are still
    // increasing because only the IsLatest entry (the first of its key) is kept.
    if (!out.IsTruncated) return { objects };
    return {
      objects,
      nextContinuationToken: JSON.stringify({ k: out.NextKeyMarker, v: out.NextVersionIdMarker }),
    };
  }

  async *commonPrefixes(prefix: string): AsyncIterable<string> {
    let token: string | undefined;
    do {
      const out = await this.s3.send(
        new ListObjectsV2Command({
          Bucket: this.options.bucket,
          Prefix: prefix,
          Delimiter: '/',
          ...(token ? { ContinuationToken: token } : {}),
        }),
      );
      for (const p of out.CommonPrefixes ?? []) if (p.Prefix) yield p.Prefix;
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
  }

  async head(key: string): Promise<HeadResult | undefined> {
    try {
      const h = await this.s3.send(new HeadObjectCommand({ Bucket: this.options.bucket, Key: key }));
      return {
        key,
        etag: h.ETag ?? '',
        size: h.ContentLength ?? 0,
        ...(h.LastModified ? { lastModified: h.LastModified } : {}),
        ...(h.VersionId && h.VersionId !== 'null' ? { versionId: h.VersionId } : {}),
        ...(h.ContentType ? { contentType: h.ContentType } : {}),
        ...(h.Metadata && Object.keys(h.Metadata).length > 0 ? { metadata: h.Metadata } : {}),
      };
    } catch (err) {
      const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (e.name === 'NotFound' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404)
        return undefined;
      throw new UnavailableError(
        `HeadObject s3://${this.options.bucket}/${key} failed: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }
}
