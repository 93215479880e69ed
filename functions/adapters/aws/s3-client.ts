import { S3Client } from '@aws-sdk/client-s3';

/**
 * The one way to build an S3 client. Checksum calculation/validation only WHEN_REQUIRED: with the
 * SDK defaults, streamed bodies go aws-chunked and some S3-compatible servers store the framing
 * (design.md §4). A custom endpoint implies path-style addressing (emulators, LocalStack).
 */
export function createS3Client(options: {
  region: string;
  endpoint?: string;
  maxSockets?: number;
}): S3Client {
  return new S3Client({
    region: options.region,
    ...(options.endpoint ? { endpoint: options.endpoint, forcePathStyle: true } : {}),
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}
