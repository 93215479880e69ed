/**
 * Streaming SHA-256 of local files. Small files are read whole (their bytes are reused for the PUT,
 * so they are read once); large files are streamed so memory stays bounded.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';

/** Files up to this size are kept in memory after hashing: one read serves hash and upload. */
export const IN_MEMORY_MAX = 1024 * 1024;

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  // 1 MiB reads: large enough to amortize syscalls, small enough to keep memory flat.
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }))
    hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export async function readAndHash(path: string): Promise<{ sha256: string; data: Buffer }> {
  const data = await readFile(path);
  return { sha256: createHash('sha256').update(data).digest('hex'), data };
}
