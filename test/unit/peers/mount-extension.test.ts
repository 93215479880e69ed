import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../functions/core/errors.ts';
import { PeerFetchError } from '../../../mount-client/peers/errors.ts';
import { peerMountExtension } from '../../../mount-client/peers/mount-extension.ts';

const SECRET = 'mount-extension-secret-0123456789';

describe('peerMountExtension', () => {
  it('is off without --peers and --peer-registry', () => {
    expect(
      peerMountExtension({ peers: [], registry: false, secret: SECRET, blockSize: 8 << 20 }),
    ).toBeUndefined();
  });

  it('refuses to start peering without a secret, saying how to make one', () => {
    const attempt = () =>
      peerMountExtension({ peers: ['10.0.0.2:7431'], registry: false, blockSize: 8 << 20 });
    expect(attempt).toThrow(ValidationError);
    expect(attempt).toThrow(/STRATA_PEER_SECRET/);
  });

  it('falls through to S3 at once until the data path exists', async () => {
    const ext = peerMountExtension({
      peers: ['10.0.0.2:7431'],
      registry: false,
      secret: SECRET,
      blockSize: 8 << 20,
    });
    const id = { object: { bucket: 'b', key: 'k', size: 10, etag: 'e' }, index: 0, blockSize: 8 << 20 };
    await expect(ext?.peer?.fetch(id)).rejects.toMatchObject({ kind: 'no_peers' });
    await expect(ext?.peer?.fetch(id)).rejects.toBeInstanceOf(PeerFetchError);
  });

  it('reports the peer section of /stats as not running before the data path exists', () => {
    const ext = peerMountExtension({
      peers: ['10.0.0.2:7431'],
      registry: false,
      secret: SECRET,
      blockSize: 8 << 20,
    });
    expect(ext?.stats?.()).toEqual({ peers: { running: false } });
  });
});
