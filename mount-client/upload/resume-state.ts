/**
 * Resume state of multipart uploads: one small JSON file per (API, remote path, local file version)
 * recording the session and the ETags of finished parts, so an interrupted upload continues with
 * only the missing parts. Written temp + rename after every part (a crash never leaves a torn
 * file); a file that does not parse or has another version is ignored, never trusted.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

const FORMAT = 1;

export interface ResumeState {
  format: typeof FORMAT;
  uploadId: string;
  remote: string;
  size: number;
  mtimeMs: number;
  partSize: number;
  partCount: number;
  /** partNumber → ETag of parts S3 acknowledged. */
  parts: Record<string, string>;
}

export function defaultStateDir(): string {
  return join(process.env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'strata', 'uploads');
}

export class ResumeStore {
  constructor(private readonly dir: string = defaultStateDir()) {}

  /** The file name identifies the local file version: a modified file never resumes old parts. */
  private fileFor(apiUrl: string, abs: string, remote: string, size: number, mtimeMs: number): string {
    const id = createHash('sha256')
      .update(JSON.stringify([apiUrl, abs, remote, size, mtimeMs]))
      .digest('hex');
    return join(this.dir, `${id.slice(0, 32)}.json`);
  }

  async load(
    apiUrl: string,
    abs: string,
    remote: string,
    size: number,
    mtimeMs: number,
  ): Promise<ResumeState | undefined> {
    try {
      const s = JSON.parse(
        await readFile(this.fileFor(apiUrl, abs, remote, size, mtimeMs), 'utf8'),
      ) as ResumeState;
      if (s.format !== FORMAT || s.remote !== remote || s.size !== size || typeof s.parts !== 'object')
        return undefined;
      return s;
    } catch {
      return undefined;
    }
  }

  async save(apiUrl: string, abs: string, state: ResumeState): Promise<void> {
    const file = this.fileFor(apiUrl, abs, state.remote, state.size, state.mtimeMs);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(tmp, JSON.stringify(state), { mode: 0o600 });
    await rename(tmp, file);
  }

  async remove(apiUrl: string, abs: string, remote: string, size: number, mtimeMs: number): Promise<void> {
    await rm(this.fileFor(apiUrl, abs, remote, size, mtimeMs), { force: true });
  }
}
