import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../functions/core/errors.ts';
import { formatHostPort, parseHostPort, parsePeerList } from '../../../mount-client/peers/address.ts';

describe('peer addresses', () => {
  it('parses host:port, bracketed IPv6 and a default port', () => {
    expect(parseHostPort('10.0.0.1:7000', 'peer')).toEqual({ host: '10.0.0.1', port: 7000 });
    expect(parseHostPort('[fd00::1]:7000', 'peer')).toEqual({ host: 'fd00::1', port: 7000 });
    expect(parseHostPort('node-a', 'peer', 7431)).toEqual({ host: 'node-a', port: 7431 });
    expect(formatHostPort({ host: 'fd00::1', port: 7000 })).toBe('[fd00::1]:7000');
  });

  it('explains how to write a bad address', () => {
    expect(() => parseHostPort('node-a:99999', '--peer-listen')).toThrow(ValidationError);
    expect(() => parseHostPort('fd00::1:7000', '--peer-listen')).toThrow(/write it like/);
    expect(() => parseHostPort('node-a', '--peer-listen')).toThrow(/--peer-listen/);
  });

  it('normalizes and de-duplicates a --peers list', () => {
    expect(parsePeerList(' a:1, b ,a:1,,[::1]:2')).toEqual(['a:1', 'b:7431', '[::1]:2']);
    expect(() => parsePeerList('a:0')).toThrow(/real port/);
  });
});
