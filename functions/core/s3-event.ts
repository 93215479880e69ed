/**
 * Parsing S3 event notifications delivered through SQS (pure; no SDK).
 *
 * Facts kept true (design.md §5): delivery is at-least-once and unordered; keys are
 * form-URL-encoded (`+` is a space); `s3:TestEvent` messages (sent when a notification is
 * configured) carry no records and are ignored. A body that is not an S3 event at all is
 * malformed: `parseS3Message` throws ValidationError so the caller can report that one message as
 * failed (it is retried, then lands in the DLQ) without failing its batch.
 */
import { ValidationError } from './errors.ts';
import { normalizeSequencer } from './sequencer.ts';

export type S3EventKind = 'put' | 'delete';

export interface S3ObjectEvent {
  kind: S3EventKind;
  eventName: string;
  bucket: string;
  /** Decoded object key. */
  key: string;
  size?: number;
  /** Bare etag (no quotes). */
  etag?: string;
  versionId?: string;
  /** Normalized (padded) sequencer. */
  sequencer: string;
  eventTime: Date;
}

export type ParsedS3Message = { type: 'test' } | { type: 'events'; events: S3ObjectEvent[] };

/** `+` is a space, then percent-decoding (S3 encodes keys like a form). */
export function decodeS3Key(encoded: string): string {
  try {
    return decodeURIComponent(encoded.replace(/\+/g, ' '));
  } catch (err) {
    throw new ValidationError(`S3 event key is not valid form-URL encoding: ${JSON.stringify(encoded)}`, {
      cause: err,
    });
  }
}

export function stripEtagQuotes(etag: string): string {
  return etag.replace(/^"(.*)"$/, '$1');
}

function fail(message: string): never {
  throw new ValidationError(`malformed S3 event message: ${message}`);
}

interface RawRecord {
  eventName?: unknown;
  eventTime?: unknown;
  s3?: {
    bucket?: { name?: unknown };
    object?: { key?: unknown; size?: unknown; eTag?: unknown; versionId?: unknown; sequencer?: unknown };
  };
}

function parseRecord(r: RawRecord, i: number): S3ObjectEvent {
  if (typeof r !== 'object' || r === null || Array.isArray(r)) fail(`Records[${i}] is not an object`);
  const eventName = typeof r.eventName === 'string' ? r.eventName : fail(`Records[${i}].eventName missing`);
  let kind: S3EventKind;
  if (eventName.startsWith('ObjectCreated:')) kind = 'put';
  // Lifecycle expirations remove objects without an ObjectRemoved event: `Delete` is a permanent
  // deletion (of the object, or of one noncurrent version), `DeleteMarkerCreated` expires the
  // current version of a versioned bucket.
  else if (eventName.startsWith('ObjectRemoved:') || eventName.startsWith('LifecycleExpiration:'))
    kind = 'delete';
  else
    fail(
      `Records[${i}].eventName ${JSON.stringify(eventName)} is not ObjectCreated:*, ObjectRemoved:* or LifecycleExpiration:*`,
    );
  const obj = r.s3?.object ?? fail(`Records[${i}].s3.object missing`);
  const bucket = r.s3?.bucket?.name;
  if (typeof bucket !== 'string') fail(`Records[${i}].s3.bucket.name missing`);
  if (typeof obj.key !== 'string' || obj.key === '') fail(`Records[${i}].s3.object.key missing`);
  if (typeof obj.sequencer !== 'string') fail(`Records[${i}].s3.object.sequencer missing`);
  const eventTime = new Date(typeof r.eventTime === 'string' ? r.eventTime : Number.NaN);
  if (Number.isNaN(eventTime.getTime())) fail(`Records[${i}].eventTime is not a timestamp`);
  const size = obj.size === undefined ? undefined : Number(obj.size);
  if (kind === 'put' && (size === undefined || !Number.isSafeInteger(size) || size < 0)) {
    fail(`Records[${i}].s3.object.size must be a non-negative integer for ${eventName}`);
  }
  if (kind === 'put' && typeof obj.eTag !== 'string')
    fail(`Records[${i}].s3.object.eTag missing for ${eventName}`);
  return {
    kind,
    eventName,
    bucket,
    key: decodeS3Key(obj.key),
    size,
    etag: typeof obj.eTag === 'string' ? stripEtagQuotes(obj.eTag) : undefined,
    versionId: typeof obj.versionId === 'string' && obj.versionId !== '' ? obj.versionId : undefined,
    sequencer: normalizeSequencer(obj.sequencer),
    eventTime,
  };
}

/** Parses one SQS message body (raw S3 notification, or wrapped in an SNS envelope). */
export function parseS3Message(body: string): ParsedS3Message {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    fail('body is not JSON');
  }
  if (typeof doc !== 'object' || doc === null) fail('body is not a JSON object');
  const obj = doc as { Type?: unknown; Message?: unknown; Event?: unknown; Records?: unknown };
  if (obj.Type === 'Notification' && typeof obj.Message === 'string') return parseS3Message(obj.Message);
  if (obj.Event === 's3:TestEvent') return { type: 'test' };
  if (!Array.isArray(obj.Records)) fail('no Records array');
  return { type: 'events', events: (obj.Records as RawRecord[]).map(parseRecord) };
}
