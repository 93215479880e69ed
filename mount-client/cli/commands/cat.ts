/**
 * `strata cat <path> [--range a-b]` — write a file (or a byte range of it) to stdout, reading S3
 * directly through a short-lived presigned GET from /v1/resolve — no AWS credentials needed.
 *
 * Reads go in ranged chunks pinned to the resolved version (versionId in the URL, else
 * `If-Match: <etag>`): if the file is replaced mid-read S3 answers 412 and cat fails instead of
 * printing a mix of two versions.
 */
import { request } from 'undici';
import type { ResolveResponse } from '../../../functions/core/api-types.ts';
import type { RegisterCommand } from '../context.ts';

/** 8 MiB per GET: large enough to amortize request latency, small enough to retry cheaply. */
const CHUNK = 8 * 1024 * 1024;

export interface ByteRange {
  start: number;
  /** Inclusive end. */
  end: number;
}

/** Parses `a-b`, `a-` or `-n` (last n bytes) against a file size. */
export function parseRange(text: string, size: number): ByteRange {
  const m = /^(\d*)-(\d*)$/.exec(text.trim());
  if (!m || (m[1] === '' && m[2] === '')) {
    throw new Error(
      `invalid --range ${JSON.stringify(text)}: use START-END, START- or -LAST (bytes, END inclusive)`,
    );
  }
  let start: number;
  let end: number;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    if (m[2] !== '' && Number(m[2]) < Number(m[1]))
      throw new Error(
        `--range ${text} ends before it starts: END is inclusive and must be ≥ START, e.g. ${m[1]}-${m[1]}`,
      );
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size) {
    throw new Error(`--range ${text} is outside the file (size ${size} bytes)`);
  }
  return { start, end };
}

/**
 * An S3 error as `HTTP <status> <Code>: <Message>`, never the raw body: a SignatureDoesNotMatch
 * body carries the presigned signature, the string to sign and the access key id.
 */
export function s3Failure(status: number, body: string): string {
  const code = /<Code>([^<]{1,100})<\/Code>/.exec(body)?.[1];
  const message = /<Message>([^<]{1,300})<\/Message>/.exec(body)?.[1];
  const hint =
    code === 'InvalidObjectState'
      ? '; the object is archived (Glacier Flexible Retrieval / Deep Archive): restore it first (aws s3api restore-object), then read it again'
      : status === 403
        ? '; the presigned URL may have expired or the clocks differ: run the command again'
        : '';
  return `HTTP ${status}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}${hint}`;
}

async function writeOut(chunk: Uint8Array): Promise<void> {
  if (!process.stdout.write(chunk)) await new Promise<void>((r) => process.stdout.once('drain', () => r()));
}

export const register: RegisterCommand = (program, ctx) => {
  program
    .command('cat')
    .description('print a file (or a byte range) to stdout via a presigned, version-pinned S3 GET')
    .argument('<path>', 'absolute path of a file')
    .option('--range <range>', 'bytes to print: START-END (inclusive), START- or -LAST')
    .action(async (path: string, opts: { range?: string }) => {
      const r: ResolveResponse = await ctx
        .api()
        .request('GET', '/v1/resolve', { query: { path, presign: 1 } });
      if (r.type !== 'file' || !r.url) throw new Error(`${path} is a directory; use \`strata ls ${path}\``);
      if (r.size === 0) return;
      const range = opts.range ? parseRange(opts.range, r.size) : { start: 0, end: r.size - 1 };
      const pin: Record<string, string> = !r.versionId && r.etag ? { 'if-match': `"${r.etag}"` } : {};
      for (let pos = range.start; pos <= range.end; pos += CHUNK) {
        const last = Math.min(range.end, pos + CHUNK - 1);
        const res = await request(r.url, { headers: { range: `bytes=${pos}-${last}`, ...pin } });
        if (res.statusCode === 412) {
          await res.body.dump();
          throw new Error(`${path} changed while it was being read; run the command again`);
        }
        if (res.statusCode !== 206 && res.statusCode !== 200) {
          throw new Error(
            `reading ${path} from S3 failed: ${s3Failure(res.statusCode, await res.body.text())}`,
          );
        }
        for await (const chunk of res.body) await writeOut(chunk as Uint8Array);
        // A 200 means the server ignored Range and sent everything from byte 0 — only fine for a
        // whole-file read, which then is complete.
        if (res.statusCode === 200) break;
      }
    });
};
