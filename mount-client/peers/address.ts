/** `host:port` parsing for --peers / --peer-listen, with errors that say what to type instead. */
import { ValidationError } from '../../functions/core/errors.ts';

/** The peer port when --peer-listen gives none; any free port works as long as peers are told it. */
export const DEFAULT_PEER_PORT = 7431;

export interface HostPort {
  host: string;
  port: number;
}

export function parseHostPort(value: string, what: string, defaultPort?: number): HostPort {
  const v = value.trim();
  // [v6]:port, host:port, or a bare host when a default port applies.
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(v) ?? /^([^:[\]]+)(?::(\d+))?$/.exec(v);
  const port = m?.[2] !== undefined ? Number(m[2]) : defaultPort;
  if (!m?.[1] || port === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ValidationError(
      `${what} "${value}" is not host:port; write it like 10.0.1.7:${DEFAULT_PEER_PORT} or [fd00::7]:${DEFAULT_PEER_PORT}`,
    );
  }
  return { host: m[1], port };
}

export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A comma-separated --peers list, normalized and de-duplicated. */
export function parsePeerList(value: string): string[] {
  const out = new Set<string>();
  for (const part of value.split(',')) {
    if (!part.trim()) continue;
    const hp = parseHostPort(part, 'peer', DEFAULT_PEER_PORT);
    if (hp.port === 0) throw new ValidationError(`peer "${part.trim()}" needs a real port, not 0`);
    out.add(formatHostPort(hp));
  }
  return [...out];
}
