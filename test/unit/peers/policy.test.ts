import { describe, expect, it } from 'vitest';
import type { BlockId } from '../../../mount-client/block-cache/types.ts';
import { applyPolicy, normalizeOrigins } from '../../../mount-client/peers/policy.ts';

const id = (o: Partial<BlockId['object']>): BlockId => ({
  object: { bucket: 'b', key: 'data/x', size: 10, etag: 'e', ...o },
  index: 0,
  blockSize: 4,
});

describe('applyPolicy', () => {
  const policy = { bucket: 'b', dataPrefix: 'data/' };

  it('passes the deployment bucket under the data prefix unchanged', () => {
    expect(applyPolicy(policy, id({}))).toEqual({ ok: true, id: id({}) });
  });

  it('refuses other buckets and keys outside (or equal to) the prefix', () => {
    expect(applyPolicy(policy, id({ bucket: 'c' }))).toMatchObject({ ok: false, status: 403 });
    expect(applyPolicy(policy, id({ key: 'datax/y' }))).toMatchObject({ ok: false, status: 403 });
    expect(applyPolicy(policy, id({ key: 'data/' }))).toMatchObject({ ok: false, status: 403 });
    expect(applyPolicy({ bucket: 'b', dataPrefix: '' }, id({ key: 'any/where' }))).toMatchObject({
      ok: true,
    });
  });

  it('drops request URLs on a node that reads with its own credentials', () => {
    const r = applyPolicy(policy, id({ url: 'http://169.254.169.254/', urlExpiresAt: 5 }));
    expect(r).toEqual({ ok: true, id: id({}) });
  });

  it('in presign mode accepts URLs on the S3 origin only, never echoing them', () => {
    const p = { ...policy, presignOrigins: normalizeOrigins(['https://s3.eu-west-1.amazonaws.com/']) };
    expect(applyPolicy(p, id({ url: 'https://s3.eu-west-1.amazonaws.com/b/data/x?sig=1' }))).toMatchObject({
      ok: true,
    });
    const bad = applyPolicy(p, id({ url: 'http://169.254.169.254/latest?sig=secret' }));
    expect(bad).toMatchObject({ ok: false, status: 403 });
    expect(JSON.stringify(bad)).not.toContain('sig=secret');
    expect(applyPolicy(p, id({ url: 'http://s3.eu-west-1.amazonaws.com/b/data/x' }))).toMatchObject({
      ok: false,
      status: 403,
    });
    expect(applyPolicy({ ...policy, presignOrigins: [] }, id({ url: 'https://s3.x/b' }))).toMatchObject({
      ok: false,
    });
  });
});
