import { describe, expect, it } from 'vitest';
import { KeepPolicy } from '../../../mount-client/peers/keep-policy.ts';
import { keepFromEnv } from '../../../mount-client/peers/mount-extension.ts';

describe('KeepPolicy', () => {
  it('second-use: a block is copied into this cache only when fetched from a peer again', () => {
    const p = new KeepPolicy('second-use');
    expect(p.onFetched('a')).toBe(false);
    expect(p.onFetched('b')).toBe(false);
    expect(p.onFetched('a')).toBe(true);
    expect(p.onFetched('a')).toBe(true);
  });

  it('second-use forgets the oldest first uses beyond its bound', () => {
    const p = new KeepPolicy('second-use', 2);
    p.onFetched('a');
    p.onFetched('b');
    p.onFetched('c'); // evicts a
    expect(p.onFetched('a')).toBe(false);
    expect(p.onFetched('c')).toBe(true);
  });

  it('always and never', () => {
    expect(new KeepPolicy('always').onFetched('a')).toBe(true);
    const never = new KeepPolicy('never');
    never.onFetched('a');
    expect(never.onFetched('a')).toBe(false);
  });

  it('STRATA_PEER_KEEP: default second-use, a clear error for anything else', () => {
    expect(keepFromEnv(undefined)).toBe('second-use');
    expect(keepFromEnv('always')).toBe('always');
    expect(() => keepFromEnv('sometimes')).toThrow(/second-use, always, never/);
  });
});
