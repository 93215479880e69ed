/**
 * The part list a client sends to POST /v1/uploads/{id}/complete. S3 would reject a wrong list
 * too, but late and vaguely (InvalidPart / InvalidPartOrder); checking it here gives a precise 400
 * and never completes an upload with a missing part.
 */
import { ValidationError } from './errors.ts';

export interface CompletedPart {
  partNumber: number;
  etag: string;
}

export function validatePartList(parts: unknown, partCount: number): CompletedPart[] {
  if (!Array.isArray(parts)) {
    throw new ValidationError('parts must be an array of {partNumber, etag}', { code: 'invalid_parts' });
  }
  if (parts.length !== partCount) {
    const given = new Set(parts.map((p) => (p as CompletedPart | null)?.partNumber));
    const missing: number[] = [];
    for (let n = 1; n <= partCount && missing.length < 10; n++) if (!given.has(n)) missing.push(n);
    throw new ValidationError(
      `this upload has ${partCount} parts but ${parts.length} were listed` +
        (missing.length
          ? `; missing part(s) ${missing.join(', ')}${missing.length === 10 ? ', …' : ''}`
          : ''),
      { code: 'invalid_parts' },
    );
  }
  const out: CompletedPart[] = [];
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i] as Partial<CompletedPart> | null;
    if (typeof p !== 'object' || p === null) {
      throw new ValidationError(`parts[${i}] must be an object {partNumber, etag}`, {
        code: 'invalid_parts',
      });
    }
    if (p.partNumber !== i + 1) {
      throw new ValidationError(
        `parts must be listed in order 1..${partCount}; parts[${i}] has partNumber ${JSON.stringify(p.partNumber)}, expected ${i + 1}`,
        { code: 'invalid_parts' },
      );
    }
    if (typeof p.etag !== 'string' || p.etag.length === 0 || p.etag.length > 1024) {
      throw new ValidationError(`parts[${i}].etag must be the ETag header S3 returned for part ${i + 1}`, {
        code: 'invalid_parts',
      });
    }
    out.push({ partNumber: i + 1, etag: p.etag });
  }
  return out;
}

/** Validates `from`/`count` of GET /v1/uploads/{id}/parts; returns the part numbers to presign. */
export function partRange(
  fromRaw: string | undefined,
  countRaw: string | undefined,
  partCount: number,
  maxCount: number,
): number[] {
  const from = fromRaw === undefined ? 1 : Number(fromRaw);
  const count = countRaw === undefined ? maxCount : Number(countRaw);
  if (!Number.isInteger(from) || from < 1 || from > partCount) {
    throw new ValidationError(
      `from must be a part number in 1..${partCount}, got ${JSON.stringify(fromRaw)}`,
    );
  }
  if (!Number.isInteger(count) || count < 1 || count > maxCount) {
    throw new ValidationError(`count must be an integer in 1..${maxCount}, got ${JSON.stringify(countRaw)}`);
  }
  const out: number[] = [];
  for (let n = from; n < from + count && n <= partCount; n++) out.push(n);
  return out;
}
