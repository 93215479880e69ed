import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../functions/core/errors.ts';
import { PeerSigner, SIGNATURE_HEADER, TIME_HEADER } from '../../../mount-client/peers/auth.ts';

const SECRET = 'correct horse battery staple';
const TARGET = '/v1/blocks/abc?bucket=b&key=data%2Fx&etag=e1&size=10&index=0&blockSize=4';

describe('PeerSigner', () => {
  it('accepts a request it signed', () => {
    const signer = new PeerSigner(SECRET);
    const headers = signer.sign('GET', TARGET);
    expect(signer.verify('GET', TARGET, headers)).toEqual({ ok: true });
  });

  it('rejects a request without the headers', () => {
    const signer = new PeerSigner(SECRET);
    expect(signer.verify('GET', TARGET, {})).toEqual({ ok: false, reason: 'missing' });
    expect(signer.verify('GET', TARGET, { [TIME_HEADER]: String(Date.now()) })).toEqual({
      ok: false,
      reason: 'missing',
    });
  });

  it('rejects a signature made with another secret', () => {
    const headers = new PeerSigner(`${SECRET}!`).sign('GET', TARGET);
    expect(new PeerSigner(SECRET).verify('GET', TARGET, headers)).toEqual({
      ok: false,
      reason: 'bad_signature',
    });
  });

  it('binds the signature to the method and every byte of the target', () => {
    // Prepare
    const signer = new PeerSigner(SECRET);
    const headers = signer.sign('GET', TARGET);
    // Act / Assess: another block index, another bucket, another method
    expect(signer.verify('GET', TARGET.replace('index=0', 'index=1'), headers).ok).toBe(false);
    expect(signer.verify('GET', TARGET.replace('bucket=b', 'bucket=c'), headers).ok).toBe(false);
    expect(signer.verify('HEAD', TARGET, headers).ok).toBe(false);
  });

  it('rejects a signature older or newer than the validity window', () => {
    // Prepare: a clock the test controls
    let now = 1_000_000_000_000;
    const signer = new PeerSigner(SECRET, { validityMs: 30_000, now: () => now });
    const headers = signer.sign('GET', TARGET);
    // Act / Assess
    now += 29_000;
    expect(signer.verify('GET', TARGET, headers)).toEqual({ ok: true });
    now += 2_000;
    expect(signer.verify('GET', TARGET, headers)).toEqual({ ok: false, reason: 'stale' });
    const future = signer.sign('GET', TARGET, now + 60_000);
    expect(signer.verify('GET', TARGET, future)).toEqual({ ok: false, reason: 'stale' });
  });

  it('rejects malformed headers without throwing', () => {
    const signer = new PeerSigner(SECRET);
    const good = signer.sign('GET', TARGET);
    expect(signer.verify('GET', TARGET, { ...good, [TIME_HEADER]: 'yesterday' })).toEqual({
      ok: false,
      reason: 'malformed',
    });
    expect(signer.verify('GET', TARGET, { ...good, [SIGNATURE_HEADER]: 'short' })).toEqual({
      ok: false,
      reason: 'bad_signature',
    });
    expect(signer.verify('GET', TARGET, { ...good, [SIGNATURE_HEADER]: ['a', 'b'] })).toEqual({
      ok: false,
      reason: 'malformed',
    });
  });

  it('refuses a short secret and never echoes it', () => {
    const attempt = () => new PeerSigner('hunter2');
    expect(attempt).toThrow(ValidationError);
    expect(attempt).toThrow(/openssl rand/);
    expect(attempt).not.toThrow(/hunter2/);
  });

  it('block tags bind the block key, length and crc32c, and need the secret', () => {
    const owner = new PeerSigner(SECRET);
    const tag = owner.blockMac('k1', 4096, 0xdeadbeef);
    expect(owner.verifyBlockMac('k1', 4096, 0xdeadbeef, tag)).toBe(true);
    expect(owner.verifyBlockMac('k2', 4096, 0xdeadbeef, tag)).toBe(false);
    expect(owner.verifyBlockMac('k1', 4095, 0xdeadbeef, tag)).toBe(false);
    expect(owner.verifyBlockMac('k1', 4096, 0xdeadbeee, tag)).toBe(false);
    expect(owner.verifyBlockMac('k1', 4096, 0xdeadbeef, undefined)).toBe(false);
    expect(owner.verifyBlockMac('k1', 4096, 0xdeadbeef, ['a'])).toBe(false);
    expect(owner.verifyBlockMac('k1', 4096, 0xdeadbeef, 'short')).toBe(false);
    expect(new PeerSigner('some other cluster secret').verifyBlockMac('k1', 4096, 0xdeadbeef, tag)).toBe(
      false,
    );
    // A request signature is never accepted as a block tag.
    const sig = owner.sign('GET', 'k1', 4096)[SIGNATURE_HEADER];
    expect(owner.verifyBlockMac('k1', 4096, 0xdeadbeef, sig)).toBe(false);
  });
});
