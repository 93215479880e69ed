/**
 * What a peer server agrees to read through for others. The owner reads with its own credentials
 * (its IAM role, or the presigned URL it was handed), so a block request must not be able to point
 * it anywhere else: only the deployment's bucket, only keys under its data prefix, and a presigned
 * URL only when this node itself reads through presigned URLs — and then only one on the S3
 * endpoint's origin (never a metadata service or an internal host).
 *
 * What must stay true: a request outside the policy is refused before anything is fetched; a node
 * reading with its own credentials never follows a URL from a request.
 */
import type { BlockId } from '../block-cache/types.ts';

export interface ServePolicy {
  /** The deployment's bucket; requests for any other bucket are refused (403). */
  bucket: string;
  /** Key prefix of the data (e.g. `data/`); keys outside it are refused (403). '' means the whole bucket. */
  dataPrefix: string;
  /**
   * Set only on a node that reads S3 through presigned URLs (on-prem, --presign): the origins
   * (`https://host[:port]`) a request's URL may point at; any other URL is refused (403). Unset: the
   * node reads with its own credentials and ignores any URL in a request.
   */
  presignOrigins?: string[];
}

export type PolicyResult = { ok: true; id: BlockId } | { ok: false; status: 400 | 403; message: string };

/** The request as this node will serve it (URL dropped when not in presign mode), or why not. */
export function applyPolicy(policy: ServePolicy, id: BlockId): PolicyResult {
  const o = id.object;
  if (o.bucket !== policy.bucket) {
    return { ok: false, status: 403, message: `this node serves blocks of bucket ${policy.bucket} only` };
  }
  if (!o.key.startsWith(policy.dataPrefix) || o.key.length === policy.dataPrefix.length) {
    return {
      ok: false,
      status: 403,
      message: `this node serves keys under ${policy.dataPrefix || '(bucket root)'} only`,
    };
  }
  if (o.url === undefined) return { ok: true, id };
  if (!policy.presignOrigins) {
    // Read with our own credentials; following the caller's URL would fetch whatever it names.
    const { url: _url, urlExpiresAt: _exp, ...object } = o;
    return { ok: true, id: { ...id, object } };
  }
  let origin: string;
  try {
    origin = new URL(o.url).origin;
  } catch {
    return { ok: false, status: 400, message: 'the presigned URL is not a URL' };
  }
  if (!policy.presignOrigins.includes(origin)) {
    // The URL itself is never echoed: it carries a signature.
    return {
      ok: false,
      status: 403,
      message: `presigned URLs are accepted only for the S3 endpoint (${policy.presignOrigins.join(', ')})`,
    };
  }
  return { ok: true, id };
}

/** Normalizes configured origins (`https://s3.example.com/` → `https://s3.example.com`). */
export function normalizeOrigins(origins: string[]): string[] {
  return origins.map((o) => new URL(o).origin);
}
