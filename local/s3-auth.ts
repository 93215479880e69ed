/**
 * What S3 checks on a presigned request and fauxqs does not: the SigV4 query signature (which binds
 * every signed header — for Strata's upload URLs the exact Content-Length, Content-Type and
 * x-amz-checksum-sha256), the URL's expiry, and the body against a sent x-amz-checksum-sha256.
 * Without these the local stack accepted an oversized, truncated or altered upload that S3 refuses,
 * so producers and tests could not see the refusal locally.
 *
 * Only query-authenticated (presigned) requests are verified; the SDK clients of the stack itself
 * (header auth, chunked signing) are trusted as before. The algorithm is AWS's Signature Version 4
 * for query parameters, with S3's rules: the path is signed as sent (no normalisation, no double
 * encoding) and the payload is UNSIGNED-PAYLOAD unless the URL names a hash.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/** An S3 error as S3 would answer it. */
export interface S3Refusal {
  status: number;
  code: string;
  message: string;
}

interface RequestLike {
  method: string;
  /** Raw request target: path and query exactly as received. */
  url: string;
  headers: Record<string, string | string[] | undefined>;
}

/** Whether the request carries a query signature (a presigned URL). */
export function isPresigned(url: string): boolean {
  return /[?&]X-Amz-Signature=/.test(url);
}

/** Verifies a presigned request's signature and expiry; undefined = valid. */
export function verifyPresigned(
  req: RequestLike,
  credentials: Credentials,
  now = Date.now(),
): S3Refusal | undefined {
  const q = req.url.indexOf('?');
  const path = q < 0 ? req.url : req.url.slice(0, q);
  const params = parseQuery(q < 0 ? '' : req.url.slice(q + 1));
  const get = (name: string) => params.find(([k]) => k === name)?.[1];
  const algorithm = get('X-Amz-Algorithm');
  const credential = get('X-Amz-Credential');
  const amzDate = get('X-Amz-Date');
  const expires = get('X-Amz-Expires');
  const signedHeaders = get('X-Amz-SignedHeaders');
  const signature = get('X-Amz-Signature');
  if (
    algorithm !== 'AWS4-HMAC-SHA256' ||
    !credential ||
    !amzDate ||
    !expires ||
    !signedHeaders ||
    !signature
  ) {
    return refusal(
      400,
      'AuthorizationQueryParametersError',
      'Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.',
    );
  }
  const [accessKeyId, ...scopeParts] = credential.split('/');
  if (accessKeyId !== credentials.accessKeyId) {
    return refusal(
      403,
      'InvalidAccessKeyId',
      'The AWS Access Key Id you provided does not exist in our records.',
    );
  }
  const signedAt = parseAmzDate(amzDate);
  if (signedAt === undefined || !/^\d+$/.test(expires)) {
    return refusal(
      400,
      'AuthorizationQueryParametersError',
      'X-Amz-Date must be in the ISO8601 Long Format and X-Amz-Expires a number of seconds.',
    );
  }
  if (now > signedAt + Number(expires) * 1000) return refusal(403, 'AccessDenied', 'Request has expired');

  const headerNames = signedHeaders.split(';');
  const canonicalHeaders = headerNames
    .map((name) => `${name}:${headerValue(req.headers[name]).trim().replace(/\s+/g, ' ')}\n`)
    .join('');
  const canonicalQuery = params
    .filter(([k]) => k !== 'X-Amz-Signature')
    .map(([k, v]) => [rfc3986(k), rfc3986(v)] as const)
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonicalRequest = [
    req.method.toUpperCase(),
    path,
    canonicalQuery,
    canonicalHeaders,
    signedHeaders,
    get('X-Amz-Content-Sha256') ?? 'UNSIGNED-PAYLOAD',
  ].join('\n');
  const scope = scopeParts.join('/');
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
  let key: Buffer = hmac(`AWS4${credentials.secretAccessKey}`, scopeParts[0] ?? '');
  for (const part of scopeParts.slice(1)) key = hmac(key, part);
  const expected = createHmac('sha256', key).update(stringToSign).digest();
  const given = Buffer.from(/^[0-9a-f]{64}$/.test(signature) ? signature : '', 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return refusal(
      403,
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
    );
  }
  return undefined;
}

/** S3's BadDigest: the body does not hash to the x-amz-checksum-sha256 the request carries. */
export function verifyChecksum(
  headers: Record<string, string | string[] | undefined>,
  body: unknown,
): S3Refusal | undefined {
  const sent = headerValue(headers['x-amz-checksum-sha256']);
  if (!sent || !Buffer.isBuffer(body)) return undefined;
  const actual = createHash('sha256').update(body).digest('base64');
  if (actual === sent) return undefined;
  return refusal(400, 'BadDigest', 'The SHA256 you specified did not match the calculated checksum.');
}

/** The S3 XML error body for a refusal. */
export function errorXml(r: S3Refusal): string {
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${r.code}</Code><Message>${esc(r.message)}</Message></Error>`;
}

function refusal(status: number, code: string, message: string): S3Refusal {
  return { status, code, message };
}

function parseQuery(raw: string): Array<[string, string]> {
  if (raw === '') return [];
  return raw.split('&').map((pair) => {
    const eq = pair.indexOf('=');
    const k = eq < 0 ? pair : pair.slice(0, eq);
    const v = eq < 0 ? '' : pair.slice(eq + 1);
    return [decode(k), decode(v)];
  });
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, '%20'));
  } catch {
    return s;
  }
}

/** SigV4's URI encoding: RFC 3986 unreserved characters kept, everything else %XX. */
function rfc3986(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function headerValue(v: string | string[] | undefined): string {
  return Array.isArray(v) ? v.join(',') : (v ?? '');
}

/** `20240501T120000Z` → epoch ms. */
function parseAmzDate(s: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) return undefined;
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

function sha256Hex(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}
