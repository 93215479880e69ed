import { describe, expect, it } from 'vitest';
import { BlockReceiveError } from '../../../mount-client/peers/block-receiver.ts';
import { classifyPeerFailure } from '../../../mount-client/peers/client.ts';

const timeouts = { timeoutMs: 5000, stallMs: 1000 };

describe('classifyPeerFailure', () => {
  it('names the connect wait for a connect timeout, the header wait for a header timeout', () => {
    const connect = classifyPeerFailure(
      new BlockReceiveError('connect_timeout', 'no connection within 1250 ms'),
      '10.0.0.7:7001',
      undefined,
      timeouts,
    );
    expect(connect.kind).toBe('timeout');
    expect(connect.message).toBe(
      'peer 10.0.0.7:7001 did not accept a connection (no connection within 1250 ms); is it up and reachable on that port?',
    );
    const headers = classifyPeerFailure(
      new BlockReceiveError('headers_timeout', 'no response head'),
      '10.0.0.7:7001',
      undefined,
      timeouts,
    );
    expect(headers.kind).toBe('timeout');
    expect(headers.message).toBe('peer 10.0.0.7:7001 did not answer within 5000 ms');
  });
});
