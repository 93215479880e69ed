/**
 * AWS-shaped S3 event notification records, built the way S3 builds them for an SQS destination.
 *
 * fauxqs sends no S3 notifications (design.md §4), so the local stack synthesizes them. Everything
 * here is pure so the indexer's tests can build the exact records S3 would send. Facts kept true:
 * - `s3.object.key` is form-URL-encoded (a space is `+`, `+` itself is `%2B`); `/` stays literal.
 * - `sequencer` is uppercase hex, strictly increasing per key; consumers left-pad and compare as
 *   strings, so a fixed width also keeps plain string comparison correct.
 * - Removal records carry no size/eTag; DeleteMarkerCreated carries the marker's versionId.
 */

export type S3CreatedEventName =
  | 'ObjectCreated:Put'
  | 'ObjectCreated:Post'
  | 'ObjectCreated:Copy'
  | 'ObjectCreated:CompleteMultipartUpload';
export type S3RemovedEventName = 'ObjectRemoved:Delete' | 'ObjectRemoved:DeleteMarkerCreated';
/** What lifecycle rules publish when they expire objects (the emulator has no lifecycle; tests send them). */
export type S3LifecycleEventName = 'LifecycleExpiration:Delete' | 'LifecycleExpiration:DeleteMarkerCreated';
export type S3EventName = S3CreatedEventName | S3RemovedEventName | S3LifecycleEventName;

export interface S3EventRecord {
  eventVersion: '2.1';
  eventSource: 'aws:s3';
  awsRegion: string;
  eventTime: string;
  eventName: S3EventName;
  userIdentity: { principalId: string };
  requestParameters: { sourceIPAddress: string };
  responseElements: { 'x-amz-request-id': string; 'x-amz-id-2': string };
  s3: {
    s3SchemaVersion: '1.0';
    configurationId: string;
    bucket: { name: string; ownerIdentity: { principalId: string }; arn: string };
    object: { key: string; size?: number; eTag?: string; versionId?: string; sequencer: string };
  };
}

export interface S3EventMessage {
  Records: S3EventRecord[];
}

export interface S3EventInput {
  eventName: S3EventName;
  bucket: string;
  /** The raw (decoded) object key. */
  key: string;
  sequencer: string;
  region?: string;
  /** Required for ObjectCreated events. */
  size?: number;
  /** With or without the surrounding quotes S3 puts on ETag headers; records carry it bare. */
  eTag?: string;
  versionId?: string;
  eventTime?: Date;
  sourceIp?: string;
  requestId?: string;
  principalId?: string;
  configurationId?: string;
}

// Java's URLEncoder (which S3 uses for event keys) leaves exactly these unescaped; `/` is kept
// literal by S3 as well, so keys stay readable.
const UNRESERVED = /[A-Za-z0-9._\-*/]/;

/** Form-URL-encodes an S3 key the way S3 event notifications do (`+` for spaces). */
export function encodeEventKey(key: string): string {
  let out = '';
  for (const ch of key) {
    if (ch === ' ') out += '+';
    else if (UNRESERVED.test(ch)) out += ch;
    else
      for (const byte of Buffer.from(ch, 'utf8'))
        out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The inverse consumers apply: `+` is a space, then percent-decoding. */
export function decodeEventKey(encoded: string): string {
  return decodeURIComponent(encoded.replace(/\+/g, ' '));
}

export function buildS3EventRecord(input: S3EventInput): S3EventRecord {
  const created = input.eventName.startsWith('ObjectCreated:');
  if (created && input.size === undefined) throw new TypeError(`${input.eventName} needs the object size`);
  const principalId = input.principalId ?? 'AWS:AIDALOCALSTRATA';
  const object: S3EventRecord['s3']['object'] = { key: encodeEventKey(input.key), sequencer: '' };
  if (created) {
    object.size = input.size;
    if (input.eTag !== undefined) object.eTag = input.eTag.replace(/^"|"$/g, '');
  }
  if (input.versionId) object.versionId = input.versionId;
  // Re-set so `sequencer` comes last, in the field order S3 uses.
  delete (object as Partial<typeof object>).sequencer;
  object.sequencer = input.sequencer;
  const requestId = input.requestId ?? randomHex(16);
  return {
    eventVersion: '2.1',
    eventSource: 'aws:s3',
    awsRegion: input.region ?? 'us-east-1',
    eventTime: (input.eventTime ?? new Date()).toISOString(),
    eventName: input.eventName,
    userIdentity: { principalId },
    requestParameters: { sourceIPAddress: input.sourceIp ?? '127.0.0.1' },
    responseElements: {
      'x-amz-request-id': requestId,
      'x-amz-id-2': Buffer.from(requestId).toString('base64'),
    },
    s3: {
      s3SchemaVersion: '1.0',
      configurationId: input.configurationId ?? 'strata-local-ingest',
      bucket: { name: input.bucket, ownerIdentity: { principalId }, arn: `arn:aws:s3:::${input.bucket}` },
      object,
    },
  };
}

/** The SQS message body S3 sends: one or more records under `Records`. */
export function s3EventMessage(records: S3EventRecord[]): string {
  return JSON.stringify({ Records: records } satisfies S3EventMessage);
}

function randomHex(bytes: number): string {
  let out = '';
  for (let i = 0; i < bytes; i++)
    out += Math.floor(Math.random() * 256)
      .toString(16)
      .padStart(2, '0');
  return out.toUpperCase();
}

/**
 * Issues sequencers: 16 uppercase hex digits of (milliseconds << 20 | counter), strictly increasing
 * across all keys of one instance (hence per key too). Time-based so they keep increasing across
 * restarts of a persisted stack, where a plain counter would start over below stored values.
 */
export class Sequencer {
  private last = 0n;
  constructor(private readonly now: () => number = Date.now) {}
  next(): string {
    const fromClock = BigInt(this.now()) << 20n;
    this.last = fromClock > this.last ? fromClock : this.last + 1n;
    return this.last.toString(16).toUpperCase().padStart(16, '0');
  }
}
