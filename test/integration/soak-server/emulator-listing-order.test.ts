/**
 * The local S3 lists keys in UTF-8 byte order, as S3 does, and pages without skipping or repeating.
 * Found by the server soak (bench/index/soak.ts): fauxqs sorted listings with localeCompare, so a
 * directory holding `émoji-😀.bin` next to `hash#1.bin` listed out of byte order and every
 * reconcile shard over it failed with KeyOrderError and went to the DLQ.
 */
import { CreateBucketCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Emulator, startEmulator } from '../../../local/emulator.ts';

const BUCKET = 'soak-order';
// Names whose locale order differs from byte order (accents, punctuation, case, astral emoji vs
// U+FFxx, which UTF-16 code units order the other way round).
const KEYS = [
  'd/a.bin',
  'd/B.bin',
  'd/b c.txt',
  'd/émoji-😀.bin',
  'd/hash#1.bin',
  'd/pct%41.bin',
  'd/plus+sign.dat',
  'd/q?.bin',
  'd/s1/x',
  'd/s1/y',
  'd/s2/x',
  'd/under_score',
  'd/under-dash',
  'd/z.bin',
  'd/\u{1F600}',
  'd/\uFF21',
  'e/outside',
];
const byteOrder = (ks: string[]) => [...ks].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));

let emulator: Emulator;
let s3: S3Client;

beforeAll(async () => {
  emulator = await startEmulator({ region: 'us-east-1' });
  s3 = new S3Client({
    region: 'us-east-1',
    endpoint: emulator.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  for (const Key of KEYS) await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'x' }));
});

afterAll(async () => {
  s3?.destroy();
  await emulator?.stop();
});

async function pages(params: { Prefix: string; Delimiter?: string; MaxKeys: number }): Promise<string[]> {
  const seen: string[] = [];
  let token: string | undefined;
  do {
    const out = await s3.send(
      new ListObjectsV2Command({ Bucket: BUCKET, ...params, ContinuationToken: token }),
    );
    for (const o of out.Contents ?? []) seen.push(o.Key as string);
    for (const p of out.CommonPrefixes ?? []) seen.push(p.Prefix as string);
    token = out.NextContinuationToken;
  } while (token);
  return seen;
}

describe('local S3 listing order', () => {
  it('one page is in UTF-8 byte order', async () => {
    const out = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'd/' }));
    const keys = (out.Contents ?? []).map((o) => o.Key as string);
    expect(keys).toEqual(byteOrder(KEYS.filter((k) => k.startsWith('d/'))));
  });

  it('pages of one key each return every key once, in byte order', async () => {
    expect(await pages({ Prefix: 'd/', MaxKeys: 1 })).toEqual(
      byteOrder(KEYS.filter((k) => k.startsWith('d/'))),
    );
  });

  it('StartAfter is compared by bytes', async () => {
    const out = await s3.send(
      new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'd/', StartAfter: 'd/hash#1.bin' }),
    );
    const want = byteOrder(KEYS.filter((k) => k.startsWith('d/'))).filter(
      (k) => Buffer.compare(Buffer.from(k), Buffer.from('d/hash#1.bin')) > 0,
    );
    expect((out.Contents ?? []).map((o) => o.Key)).toEqual(want);
  });

  it('delimiter pages of 1–3 entries give each key and prefix once, in byte order', async () => {
    const want = byteOrder([
      ...KEYS.filter((k) => k.startsWith('d/') && !k.slice(2).includes('/')),
      'd/s1/',
      'd/s2/',
    ]);
    for (const MaxKeys of [1, 2, 3]) {
      expect(byteOrder(await pages({ Prefix: 'd/', Delimiter: '/', MaxKeys }))).toEqual(want);
    }
  });

  it('a delimiter rolls sub-prefixes up, each once', async () => {
    const out = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'd/', Delimiter: '/' }));
    expect((out.CommonPrefixes ?? []).map((p) => p.Prefix)).toEqual(['d/s1/', 'd/s2/']);
    expect((out.Contents ?? []).map((o) => o.Key)).toEqual(
      byteOrder(KEYS.filter((k) => k.startsWith('d/') && !k.slice(2).includes('/'))),
    );
  });
});
