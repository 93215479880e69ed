import { describe, expect, it } from 'vitest';
import { parseRange, s3Failure } from '../../../../mount-client/cli/commands/cat.ts';

describe('strata cat --range', () => {
  it('reads START-END (inclusive), START- and -LAST, clamped to the file', () => {
    expect(parseRange('0-99', 1000)).toEqual({ start: 0, end: 99 });
    expect(parseRange('990-', 1000)).toEqual({ start: 990, end: 999 });
    expect(parseRange('-10', 1000)).toEqual({ start: 990, end: 999 });
    expect(parseRange('5-5000', 1000)).toEqual({ start: 5, end: 999 });
  });

  it('says a reversed range is reversed, not that it lies outside the file', () => {
    expect(() => parseRange('5-2', 8)).toThrow(/--range 5-2 ends before it starts: END is inclusive/);
  });

  it('says a range past the end is outside the file, with its size', () => {
    expect(() => parseRange('8-9', 8)).toThrow(/outside the file \(size 8 bytes\)/);
    expect(() => parseRange('abc', 8)).toThrow(/use START-END, START- or -LAST/);
  });
});

describe('strata cat: an S3 error', () => {
  it('prints its code and message, never the signature or key id an S3 error body carries', () => {
    const body =
      '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message><AWSAccessKeyId>AKIAEXAMPLEKEYID0001</AWSAccessKeyId><SignatureProvided>c0ffee1234deadbeef</SignatureProvided></Error>';
    const line = s3Failure(403, body);
    expect(line).toMatch(/^HTTP 403 SignatureDoesNotMatch: The request signature we calculated/);
    expect(line).toMatch(/run the command again$/);
    expect(line).not.toMatch(/AKIAEXAMPLEKEYID0001|c0ffee1234deadbeef/);
  });

  it('an archived object says to restore it, not that the URL expired', () => {
    const line = s3Failure(
      403,
      "<Error><Code>InvalidObjectState</Code><Message>The operation is not valid for the object's storage class</Message></Error>",
    );
    expect(line).toMatch(
      /^HTTP 403 InvalidObjectState: .* archived .* restore it first \(aws s3api restore-object\)/,
    );
    expect(line).not.toMatch(/expired/);
  });

  it('says the status alone when the body is not an S3 error', () => {
    expect(s3Failure(502, '<html>bad gateway</html>')).toBe('HTTP 502');
  });
});
