/** Small formatting helpers shared by the listing commands. */

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

/** `2024-03-01 12:34` in UTC: stable across machines and sortable. */
export function formatTime(iso: string): string {
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
}

/** Parses `30d`, `12h`, `15m`, `3600s` or a plain number of seconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(text.trim());
  if (!m) throw new Error(`invalid duration ${JSON.stringify(text)}: use e.g. 3600s, 15m, 12h or 30d`);
  const n = Number(m[1]);
  if (n === 0)
    throw new Error(`invalid duration ${JSON.stringify(text)}: it must be longer than 0, e.g. 12h`);
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  return n * unit;
}

/**
 * A name as a terminal should show it: characters that are invisible or change how the rest of
 * the line is displayed (bidirectional controls, zero-width characters, line and paragraph
 * separators, the BOM) become `\u{…}`, so what you see is what the name is. Such names can
 * reach the index through keys written straight to S3 (uploads refuse the bidirectional
 * controls); `--json` keeps them exact.
 */
export function displayName(name: string): string {
  return name.replace(INVISIBLE, (c) => `\\u{${(c.codePointAt(0) as number).toString(16).toUpperCase()}}`);
}

const INVISIBLE = /[\u200B-\u200F\u2028-\u202E\u2060-\u2069\uFEFF]/gu;
