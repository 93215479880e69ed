import { describe, expect, it } from 'vitest';
import { parseRange } from '../../../../mount-client/cli/commands/cat.ts';

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
