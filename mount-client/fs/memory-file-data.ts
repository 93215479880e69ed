/**
 * In-memory FileData: serves bytes stored per `bucket/key`, pinned to the etag given at open —
 * a version that no longer matches fails with PreconditionFailedError, as a pinned S3 GET would.
 * Counts opens and reads so tests can see what the filesystem asked for.
 */
import { PreconditionFailedError } from '../../functions/core/errors.ts';
import type { ObjectVersion } from '../block-cache/types.ts';
import type { FileData, FileReader } from './file-data.ts';

export class MemoryFileData implements FileData {
  readonly objects = new Map<string, { etag: string; bytes: Buffer }>();
  readonly counts = { opens: 0, reads: 0, open: 0 };
  readonly opened: ObjectVersion[] = [];

  set(bucket: string, key: string, etag: string, bytes: Buffer): void {
    this.objects.set(`${bucket}/${key}`, { etag, bytes });
  }

  open(version: ObjectVersion): FileReader {
    this.counts.opens++;
    this.counts.open++;
    this.opened.push(version);
    const id = `${version.bucket}/${version.key}`;
    return {
      read: async (offset, length) => {
        this.counts.reads++;
        const obj = this.objects.get(id);
        if (!obj || obj.etag !== version.etag) {
          throw new PreconditionFailedError(`${id} changed since it was opened (etag ${version.etag})`);
        }
        return obj.bytes.subarray(offset, Math.min(offset + length, version.size));
      },
      close: () => {
        this.counts.open--;
      },
    };
  }
}
