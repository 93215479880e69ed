/**
 * S3 event sequencers (design.md §5). A sequencer orders events *for the same key only*: left-pad
 * with zeros to a common width and compare as strings. Stored padded, so the database compares
 * them with plain text ordering (COLLATE "C").
 */
import { ValidationError } from './errors.ts';

/** S3 sequencers are ~16–20 hex digits today; 32 leaves room without making rows fat. */
export const SEQUENCER_WIDTH = 32;

export function normalizeSequencer(raw: string): string {
  if (!/^[0-9A-Fa-f]{1,32}$/.test(raw)) {
    throw new ValidationError(`invalid S3 sequencer ${JSON.stringify(raw)}: expected 1–32 hex digits`);
  }
  return raw.toUpperCase().padStart(SEQUENCER_WIDTH, '0');
}

/** True when `candidate` (normalized) is strictly newer than `stored` (normalized or absent). */
export function isNewer(candidate: string, stored: string | null | undefined): boolean {
  return stored === null || stored === undefined || candidate > stored;
}
