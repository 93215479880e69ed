/**
 * presignPuts signs batch URLs without the SDK's per-URL middleware run; it must produce exactly
 * what getSignedUrl (presignPut) produces for the same signing time, for any key and headers.
 * Signing is local: no network.
 */
import { S3Client } from '@aws-sdk/client-s3';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { presignPut, presignPuts } from '../../../../functions/adapters/aws/presign-upload.ts';

const credentials = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
};
// As Strata builds them (design.md §4: checksums WHEN_REQUIRED) — the fast path — and one with
// the SDK defaults, which add a checksum parameter and must take the getSignedUrl fallback.
const strata = {
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
} as const;
const clients = {
  'path-style emulator': new S3Client({
    region: 'us-east-1',
    endpoint: 'http://127.0.0.1:4566',
    forcePathStyle: true,
    credentials,
    ...strata,
  }),
  'AWS virtual-hosted': new S3Client({ region: 'eu-west-1', credentials, ...strata }),
  'SDK default checksums': new S3Client({ region: 'eu-west-1', credentials }),
};
const date = new Date('2026-01-02T03:04:05Z');
const segment = fc.oneof(
  fc.constantFrom('a b', 'x+y', '100%', 'h#sh', 'q?', 'Café', '🚀', "it's (1)*!", '~_.-', 'plain'),
  fc.string({ minLength: 1, maxLength: 12 }).filter((s) => !s.includes('/')),
);
const spec = fc.record({
  key: fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => `data/${s.join('/')}`),
  size: fc.integer({ min: 1, max: 64 * 1024 * 1024 }),
  contentType: fc.constantFrom('application/octet-stream', 'text/csv', 'text/plain; charset=utf-8'),
  sha256Base64: fc.option(
    fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('base64')),
    {
      nil: undefined,
    },
  ),
  metadata: fc.option(fc.constant({ sha256: 'ab'.repeat(32), 'strata-date': '2026-01-02' }), {
    nil: undefined,
  }),
});

describe('presignPuts', () => {
  for (const [name, s3] of Object.entries(clients)) {
    it(`equals getSignedUrl URL by URL (${name})`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(spec, { minLength: 2, maxLength: 5 }), async (specs) => {
          const batch = await presignPuts(
            s3,
            specs.map((s) => ({ ...s, bucket: 'strata-data' })),
            900,
            date,
          );
          const single = await Promise.all(
            specs.map((s) => presignPut(s3, { ...s, bucket: 'strata-data' }, 900, date)),
          );
          expect(batch).toEqual(single);
        }),
        { numRuns: 40 },
      );
    });
  }

  it('returns nothing for no specs', async () => {
    expect(await presignPuts(clients['AWS virtual-hosted'], [], 900)).toEqual([]);
  });
});
