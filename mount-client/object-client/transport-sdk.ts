/**
 * Ranged GETs through the AWS SDK's GetObject (header-signed per request). Kept as the comparison
 * point for bench/mount/ceilings.ts and as a fallback (`transport: 'sdk'`); the SDK's own retries are
 * off (maxAttempts 1) so the data path's retry policy and metrics stay the single source of truth.
 */

import { Agent as HttpAgent } from 'node:http';
import { Agent } from 'node:https';
import {
  GetObjectCommand,
  type GetObjectCommandOutput,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { TransientError } from './errors.ts';
import {
  checkContentRange,
  checkSameVersion,
  quotedEtag,
  type RangeRequest,
  type RangeTransport,
  totalFromContentRange,
} from './transport.ts';
import { classifyNetworkError, statusError } from './transport-undici.ts';

export function createSdkTransport(o: {
  region: string;
  endpoint?: string;
  connections: number;
}): RangeTransport {
  const s3 = new S3Client({
    region: o.region,
    ...(o.endpoint ? { endpoint: o.endpoint, forcePathStyle: true } : {}),
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
    // Handler options as a plain object: the SDK builds its NodeHttpHandler from them.
    requestHandler: {
      httpAgent: new HttpAgent({ keepAlive: true, maxSockets: o.connections }),
      httpsAgent: new Agent({ keepAlive: true, maxSockets: o.connections }),
      connectionTimeout: 3000,
      requestTimeout: 5000,
    },
  });
  return {
    name: 'sdk',
    async get(req: RangeRequest): Promise<Buffer> {
      const v = req.object;
      let res: GetObjectCommandOutput;
      try {
        res = await s3.send(
          new GetObjectCommand({
            Bucket: v.bucket,
            Key: v.key,
            Range: `bytes=${req.start}-${req.start + req.length - 1}`,
            ...(v.versionId ? { VersionId: v.versionId } : { IfMatch: quotedEtag(v.etag) }),
          }),
          { abortSignal: req.signal },
        );
      } catch (err) {
        if (err instanceof S3ServiceException && err.$metadata.httpStatusCode) {
          throw statusError(err.$metadata.httpStatusCode, `<Code>${err.name}</Code>${err.message}`, req);
        }
        throw classifyNetworkError(err);
      }
      checkSameVersion(req, res.ETag, res.VersionId, totalFromContentRange(res.ContentRange));
      if (res.ContentRange !== undefined) checkContentRange(req, res.ContentRange);
      const out = req.alloc ? req.alloc(req.length) : Buffer.allocUnsafe(req.length);
      let off = 0;
      try {
        for await (const chunk of res.Body as unknown as AsyncIterable<Uint8Array>) {
          if (off + chunk.length > out.length)
            throw new TransientError('short-body', 'body longer than range');
          out.set(chunk, off);
          off += chunk.length;
        }
      } catch (err) {
        throw classifyNetworkError(err);
      }
      if (off !== req.length) throw new TransientError('short-body', `got ${off} of ${req.length} bytes`);
      return out;
    },
    async close() {
      s3.destroy();
    },
  };
}
