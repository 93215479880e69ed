/**
 * Scheduled cleanup of abandoned uploads (routes.ts: every 15 minutes).
 *
 * Pending sessions past their expiry are expired: multipart uploads are aborted in S3 first (S3
 * keeps and bills uploaded parts of an unfinished upload forever), then the session's quota
 * reservation is released. Completed sessions the indexer never settled (a lost event) release
 * their reservation after UNSETTLED_GRACE_MS; the reconciler indexes such objects without a session.
 * Aborted single-PUT sessions keep their reservation until their URL expires; this job releases it.
 */
import { abortMultipart } from '../adapters/aws/presign-upload.ts';
import {
  listExpired,
  releaseAbortedAfterExpiry,
  releaseSession,
  releaseUnsettled,
} from '../adapters/pg/uploads-store.ts';
import { type Deps, deps as defaultDeps, getLogger } from './http/index.ts';

/** Sessions per run: bounded so one run fits the Lambda timeout; the next run takes the rest. */
const BATCH = 500;
/** The indexer settles within seconds; an hour means the event is lost, not late. */
const UNSETTLED_GRACE_MS = 3600_000;

export interface CleanupResult {
  expired: number;
  aborted: number;
  failed: number;
  unsettledReleased: number;
  /** Aborted single-PUT sessions whose URL expired without the object arriving. */
  abortedReleased: number;
}

export async function cleanupUploads(d: Deps, now = new Date()): Promise<CleanupResult> {
  const out: CleanupResult = {
    expired: 0,
    aborted: 0,
    failed: 0,
    unsettledReleased: 0,
    abortedReleased: 0,
  };
  const sessions = await listExpired(d.pool, now, BATCH);
  for (const s of sessions) {
    try {
      if (s.mode === 'multipart' && s.s3UploadId) {
        await abortMultipart(d.s3, { bucket: d.config.bucket, key: s.key, uploadId: s.s3UploadId });
        out.aborted++;
      }
      if (await releaseSession(d.pool, s.id, 'expired')) out.expired++;
    } catch (err) {
      // One failure must not stop the sweep; the session stays pending and the next run retries it.
      out.failed++;
      getLogger().warn('upload cleanup failed for a session', {
        uploadId: s.id,
        error: (err as Error).message,
      });
    }
  }
  out.abortedReleased = await releaseAbortedAfterExpiry(d.pool, now);
  out.unsettledReleased = await releaseUnsettled(d.pool, new Date(now.getTime() - UNSETTLED_GRACE_MS));
  getLogger().info('upload cleanup', { ...out });
  return out;
}

export const handler = async (): Promise<CleanupResult> => cleanupUploads(defaultDeps());
