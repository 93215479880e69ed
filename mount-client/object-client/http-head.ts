/**
 * The two pieces of HTTP/1.1 response-head parsing shared by the hand-written receivers that read
 * bodies straight into caller buffers (transport-socket.ts for S3, peers/block-receiver.ts for
 * peers): the status line and the header (or trailer) fields. Framing, timeouts and connection
 * reuse stay with each receiver; they differ on purpose (see their module notes).
 */

/** `Name: value` lines → lower-cased names; malformed lines are skipped, the last repeat wins. */
export function parseFields(lines: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    out[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return out;
}

/**
 * A response head (the text before CRLF CRLF) → status and fields; undefined when the first line is
 * not an HTTP/1.0 or 1.1 status line (the caller names the offending line in its own error).
 */
export function parseResponseHead(
  text: string,
): { status: number; fields: Record<string, string> } | undefined {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
  return m ? { status: Number(m[1]), fields: parseFields(lines.slice(1)) } : undefined;
}
