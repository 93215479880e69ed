/**
 * Validation of upload requests (POST /v1/uploads and each entry of POST /v1/uploads:batch).
 *
 * Written by hand rather than with a schema library because every rejection must say exactly what
 * to fix (issue 4: "precise 400 messages"). Returns the normalized request; throws ValidationError.
 */
import { createHash } from 'node:crypto';
import { ValidationError } from './errors.ts';
import { keyForPath, normalizePath } from './paths.ts';
import { MAX_OBJECT_BYTES } from './upload-plan.ts';

export interface UploadRequest {
  path: string;
  key: string;
  size: number;
  /** Lower-case hex digest, when the client gave one. */
  sha256?: string;
  contentType: string;
  /** `yyyy-mm-dd` the file is listed under in the by-date view (default: the upload day). */
  date?: string;
  metadata?: Record<string, string>;
}

/** S3 limits user metadata (names + values) to 2 KiB per object. */
const MAX_METADATA_BYTES = 2048;
const DEFAULT_CONTENT_TYPE = 'application/octet-stream';
// RFC 9110 media type: type "/" subtype, then parameters; no control characters.
const CONTENT_TYPE = /^[\w!#$&^.+-]+\/[\w!#$&^.+-]+(\s*;\s*[\w!#$&^.+-]+=("[^"\\\r\n]*"|[\w!#$&^.+-]+))*$/;
const HEX64 = /^[0-9a-fA-F]{64}$/;
const BASE64_32 = /^[A-Za-z0-9+/]{43}=$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;
// S3 metadata names travel as HTTP header names (x-amz-meta-<name>), lower-cased by S3.
const META_NAME = /^[a-z0-9][a-z0-9_-]{0,127}$/;
const KNOWN_FIELDS = new Set(['path', 'size', 'sha256', 'contentType', 'date', 'metadata']);
// Metadata names Strata itself writes and trusts when indexing: a client setting them directly would
// record a digest or date the service never checked. They come only from the `sha256`/`date` fields.
const RESERVED_META = new Set(['sha256', 'strata-date']);

export function parseUploadRequest(body: unknown, dataPrefix: string): UploadRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ValidationError('request body must be a JSON object such as {"path":"/a.csv","size":123}');
  }
  const b = body as Record<string, unknown>;
  for (const field of Object.keys(b)) {
    if (!KNOWN_FIELDS.has(field)) {
      throw new ValidationError(`unknown field "${field}"; allowed: ${[...KNOWN_FIELDS].join(', ')}`);
    }
  }
  const path = normalizePath(b.path, { dataPrefix });
  checkUploadName(path);
  const size = b.size;
  if (typeof size !== 'number' || !Number.isInteger(size)) {
    throw new ValidationError(`size must be an integer number of bytes, got ${JSON.stringify(size)}`, {
      code: 'invalid_size',
    });
  }
  if (size <= 0) {
    throw new ValidationError(
      `size must be at least 1 byte, got ${size}; empty files cannot be uploaded through presigned URLs`,
      { code: 'invalid_size' },
    );
  }
  if (size > MAX_OBJECT_BYTES) {
    throw new ValidationError(
      `size ${size} exceeds the S3 object limit of 5 TiB (${MAX_OBJECT_BYTES} bytes); split the file`,
      { code: 'invalid_size' },
    );
  }
  const out: UploadRequest = {
    path,
    key: keyForPath(dataPrefix, path),
    size,
    contentType: parseContentType(b.contentType),
  };
  if (b.sha256 !== undefined && b.sha256 !== null) out.sha256 = parseSha256(b.sha256);
  if (b.date !== undefined && b.date !== null) out.date = parseDate(b.date);
  if (b.metadata !== undefined && b.metadata !== null) out.metadata = parseMetadata(b.metadata);
  return out;
}

/**
 * Longest name (path segment) a new upload may have, in UTF-8 bytes: NAME_MAX of ext4 and xfs,
 * and the `namemax` `strata mount` reports in statfs. A longer name can be read through the mount
 * (FUSE allows 1,024) but not copied out of it onto a local file system (cp fails with
 * ENAMETOOLONG). Checked at upload only: objects already in S3 stay indexable and readable through
 * the API and the mount.
 */
export const MAX_NAME_BYTES = 255;

/** Bidirectional embeddings, overrides (U+202A–U+202E) and isolates (U+2066–U+2069). */
const BIDI_CONTROL = /[\u202A-\u202E\u2066-\u2069]/u;
const BIDI_CONTROLS = new RegExp(BIDI_CONTROL.source, 'gu');

/** Upload-only rules on top of normalizePath: what would make the file unusable or mis-named. */
function checkUploadName(path: string): void {
  if (path.includes('\uFFFD')) {
    // The replacement character is what a decoder leaves for bytes that were not UTF-8 (an
    // undecodable local file name, a mis-encoded body): storing it would silently rename the file,
    // and two different names could land on one path.
    throw new ValidationError(
      `path ${JSON.stringify(path)} contains U+FFFD, the mark of a name that was not valid UTF-8 on the way here; rename the file (or fix the client's encoding) and upload again`,
      { code: 'invalid_path' },
    );
  }
  const bidi = BIDI_CONTROL.exec(path);
  if (bidi) {
    // Embeddings, overrides and isolates reorder how the rest of the name is displayed: with
    // U+202E "invoice\u202Efdp.exe" shows as "invoiceexe.pdf" in ls, a browser or a log viewer
    // ("Trojan Source"). Marks (U+200E/U+200F) that right-to-left names use are allowed.
    const cp = (bidi[0].codePointAt(0) as number).toString(16).toUpperCase();
    // The message shows the path with those characters escaped: printed raw, it would itself
    // display reordered in the terminal or log that shows the error.
    const visible = path.replace(
      BIDI_CONTROLS,
      (c) => `\\u${(c.codePointAt(0) as number).toString(16).toUpperCase()}`,
    );
    throw new ValidationError(
      `path "${visible}" contains U+${cp}, a bidirectional control character that makes the name display differently from what it is; remove it and upload again`,
      { code: 'invalid_path' },
    );
  }
  for (const segment of path.slice(1).split('/')) {
    const bytes = Buffer.byteLength(segment, 'utf8');
    if (bytes > MAX_NAME_BYTES) {
      throw new ValidationError(
        `path segment "${segment.slice(0, 32)}…" is ${bytes} bytes of UTF-8; names are limited to ${MAX_NAME_BYTES} bytes (local file systems cannot hold longer ones, so the file could not be copied out of a mount): shorten it`,
        { code: 'invalid_path' },
      );
    }
  }
}

/** Accepts 64 hex characters or the 44-character base64 form S3 uses; returns lower-case hex. */
export function parseSha256(value: unknown): string {
  if (typeof value === 'string' && HEX64.test(value)) return value.toLowerCase();
  if (typeof value === 'string' && BASE64_32.test(value)) return Buffer.from(value, 'base64').toString('hex');
  throw new ValidationError(
    `sha256 must be the SHA-256 digest as 64 hex characters (or 44 characters of base64), got ${JSON.stringify(value)}`,
    { code: 'invalid_sha256' },
  );
}

/** The base64 form S3 expects in x-amz-checksum-sha256. */
export function sha256Base64(hex: string): string {
  return Buffer.from(hex, 'hex').toString('base64');
}

function parseContentType(value: unknown): string {
  if (value === undefined || value === null || value === '') return DEFAULT_CONTENT_TYPE;
  if (typeof value !== 'string' || value.length > 255 || !CONTENT_TYPE.test(value)) {
    throw new ValidationError(
      `contentType must be a media type such as "text/csv" or "application/json; charset=utf-8", got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function parseDate(value: unknown): string {
  if (typeof value === 'string' && DATE.test(value)) {
    const d = new Date(`${value}T00:00:00Z`);
    if (!Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === value) return value;
  }
  throw new ValidationError(`date must be a calendar date yyyy-mm-dd, got ${JSON.stringify(value)}`);
}

function parseMetadata(value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ValidationError('metadata must be an object of string values');
  }
  const out: Record<string, string> = {};
  let bytes = 0;
  for (const [name, v] of Object.entries(value)) {
    if (!META_NAME.test(name)) {
      throw new ValidationError(
        `metadata name ${JSON.stringify(name)} is invalid: use lower-case letters, digits, "-" and "_"`,
      );
    }
    if (RESERVED_META.has(name)) {
      throw new ValidationError(
        `metadata name "${name}" is reserved; pass the ${name === 'sha256' ? '"sha256"' : '"date"'} field instead`,
      );
    }
    if (typeof v !== 'string') {
      throw new ValidationError(`metadata value of "${name}" must be a string`);
    }
    // biome-ignore lint/suspicious/noControlCharactersInRegex: S3 sends metadata as header values
    if (/[\u0000-\u001f\u007f]/.test(v)) {
      throw new ValidationError(`metadata value of "${name}" contains a control character`);
    }
    bytes += Buffer.byteLength(name) + Buffer.byteLength(v);
    out[name] = v;
  }
  if (bytes > MAX_METADATA_BYTES) {
    throw new ValidationError(
      `metadata is ${bytes} bytes; S3 allows at most ${MAX_METADATA_BYTES} bytes of names and values`,
    );
  }
  return out;
}

/**
 * Hash of the normalized request, stored with an Idempotency-Key: a retry with the same key must
 * carry the same request, and "the same" is judged after normalization (NFD and NFC paths agree).
 */
export function requestHash(req: UploadRequest): string {
  const canonical = JSON.stringify([
    req.path,
    req.size,
    req.sha256 ?? null,
    req.contentType,
    req.date ?? null,
    req.metadata ? Object.entries(req.metadata).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) : null,
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}

/** Idempotency keys are opaque client strings; bounded so they index well and log safely. */
export function parseIdempotencyKey(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (value.length > 255 || !/^[\x21-\x7e]+$/.test(value)) {
    throw new ValidationError(
      'Idempotency-Key must be 1–255 visible ASCII characters (a UUID is a good choice)',
    );
  }
  return value;
}
