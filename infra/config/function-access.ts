/**
 * What each Lambda in functions/handlers/routes.ts may touch — the one place least privilege is
 * decided. routes.ts says what runs and when; this table says what it can reach. Keyed by LambdaName,
 * so a Lambda added to routes.ts does not type-check until its access is written down here.
 *
 * Every function gets STRATA_BUCKET / STRATA_DATA_PREFIX (identifiers, not access); S3 access is
 * granted only on the data prefix and only for the verbs listed.
 */
import type { LambdaName, QueueName } from '../../functions/handlers/routes.ts';

export type BucketAccess =
  /** GetObject (+ HEAD, presigned GET) on the data prefix. */
  | 'read'
  /** PutObject + multipart verbs on the data prefix, for presigned upload URLs. */
  | 'presignUpload'
  /** ListBucket restricted to the data prefix (reconcile listings). */
  | 'list'
  /** DeleteObject on the data prefix (DELETE /v1/files). */
  | 'delete'
  /** List and abort stale multipart uploads on the data prefix. */
  | 'abortUploads';

export interface FunctionAccess {
  bucket: BucketAccess[];
  database: boolean;
  upstash: boolean;
  sendTo: QueueName[];
}

const none: FunctionAccess = { bucket: [], database: false, upstash: false, sendTo: [] };

export const functionAccess: Record<LambdaName, FunctionAccess> = {
  // Readiness probes the database; no data access.
  health: { ...none, database: true },
  // resolve (&presign=1 signs a GET), list, dates, changes, stats, and DELETE /v1/files.
  query: { ...none, bucket: ['read', 'delete'], database: true, upstash: true },
  // Signs PUT / multipart URLs; never reads objects.
  uploads: { ...none, bucket: ['presignUpload'], database: true, upstash: true },
  admin: { ...none, database: true },
  // Starts a run by planning shards onto the reconcile queue.
  reconcileApi: { ...none, bucket: ['list'], database: true, sendTo: ['reconcile'] },
  peers: { ...none, database: true, upstash: true },
  // Consumes S3 events: writes the index and invalidates the cache. HEADs an object when an event
  // lacks metadata (GetObject permission covers HEAD), and HEADs a key after a version of it was
  // deleted to learn which version is current. ListBucket (on the data prefix only) is what makes
  // S3 answer a HEAD of a key with no version left 404 instead of 403 AccessDenied: without it the
  // indexer could not tell "gone" from "refused", and such a message would go to the DLQ. It never
  // writes or deletes.
  indexer: { ...none, bucket: ['read', 'list'], database: true, upstash: true },
  reconcilePlanner: { ...none, bucket: ['list'], database: true, sendTo: ['reconcile'] },
  // Lists its shard and HEADs objects whose listing and index disagree.
  reconcileWorker: { ...none, bucket: ['list', 'read'], database: true, upstash: true },
  uploadCleanup: { ...none, bucket: ['abortUploads'], database: true },
  migrate: { ...none, database: true },
};
