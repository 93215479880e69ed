import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../functions/core/errors.ts';
import {
  ancestorsOf,
  baseName,
  isWithin,
  joinPath,
  keyForPath,
  normalizePath,
  normalizePrefix,
  parentOf,
  pathForKey,
} from '../../../functions/core/paths.ts';

describe('normalizePath', () => {
  it.each([
    ['/a/b.txt', '/a/b.txt'],
    ['/with space/a+b%20#?.txt', '/with space/a+b%20#?.txt'],
    ['/emoji/🚀 launch.bin', '/emoji/🚀 launch.bin'],
    ['/caf\u0065\u0301.txt', '/caf\u00e9.txt'], // NFD input becomes one NFC path
  ])('accepts %j', (input, expected) => {
    expect(normalizePath(input)).toBe(expected);
  });

  it.each([
    ['', /required/],
    ['relative/a', /absolute/],
    ['/a//b', /empty segment/],
    ['/a/../b', /"\." or "\.\."/],
    ['/a/./b', /"\." or "\.\."/],
    ['/a/b\u0000c', /control character/],
    ['/a/b\nc', /control character/],
    ['/a\uD800', /well-formed/],
    ['/a\uDC00b', /well-formed/],
    ['/a/', /directory/],
    ['/', /directory/],
    ['/.by-date/2024-01-01/x', /reserved/],
    [`/${'x'.repeat(1025)}`, /too long/],
  ])('rejects %j with a precise message', (input, message) => {
    expect(() => normalizePath(input)).toThrow(ValidationError);
    expect(() => normalizePath(input)).toThrow(message);
  });

  it('counts the data prefix and multi-byte characters against the 1024-byte key limit', () => {
    const name = `/${'é'.repeat(510)}`; // 1020 bytes of UTF-8; 1025 with the prefix
    expect(normalizePath(name)).toBe(name);
    expect(() => normalizePath(name, { dataPrefix: 'data/' })).toThrow(/1025 bytes/);
    expect(() => normalizePath(`/${'é'.repeat(513)}`)).toThrow(/too long/);
  });

  it('accepts directories when asked and strips the trailing slash', () => {
    expect(normalizePath('/', { directory: true })).toBe('/');
    expect(normalizePath('/a/b/', { directory: true })).toBe('/a/b');
    expect(() => normalizePath('/a//', { directory: true })).toThrow(/empty segment/);
  });
});

describe('keys', () => {
  it('derives keys under the data prefix and maps them back', () => {
    expect(keyForPath('data/', '/a b/c+d.txt')).toBe('data/a b/c+d.txt');
    expect(pathForKey('data/', 'data/a b/c+d.txt')).toBe('/a b/c+d.txt');
  });

  it('ignores keys outside the prefix, folder markers and non-canonical keys', () => {
    expect(pathForKey('data/', 'other/a.txt')).toBeUndefined();
    expect(pathForKey('data/', 'data/dir/')).toBeUndefined();
    expect(pathForKey('data/', 'data/a//b')).toBeUndefined();
    expect(pathForKey('data/', 'data/cafe\u0301')).toBeUndefined();
    expect(pathForKey('data/', 'data/.by-date/x')).toBeUndefined();
  });

  it('normalizes prefixes', () => {
    expect(normalizePrefix('')).toBe('');
    expect(normalizePrefix('/data')).toBe('data/');
    expect(normalizePrefix('data/')).toBe('data/');
  });

  it('round-trips any valid path (property)', () => {
    const segment = fc
      .string({ unit: 'grapheme', minLength: 1, maxLength: 12 })
      .map((s) => s.normalize('NFC'))
      // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is filtered out
      .filter((s) => !s.includes('/') && s !== '.' && s !== '..' && !/[\u0000-\u001f\u007f-\u009f]/u.test(s));
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 6 }), (segments) => {
        fc.pre(segments[0] !== '.by-date');
        const path = normalizePath(`/${segments.join('/')}`, { dataPrefix: 'data/' });
        expect(pathForKey('data/', keyForPath('data/', path))).toBe(path);
      }),
    );
  });
});

describe('path helpers', () => {
  it('parent, base name, ancestors, join, within', () => {
    expect(parentOf('/a/b/c')).toBe('/a/b');
    expect(parentOf('/a')).toBe('/');
    expect(baseName('/a/b/c.txt')).toBe('c.txt');
    expect(ancestorsOf('/a/b/c')).toEqual(['/a/b', '/a', '/']);
    expect(joinPath('/', 'x')).toBe('/x');
    expect(joinPath('/a', 'x')).toBe('/a/x');
    expect(isWithin('/team-a/x', '/team-a/')).toBe(true);
    expect(isWithin('/team-ab/x', '/team-a/')).toBe(false);
    expect(isWithin('/anything', '/')).toBe(true);
  });
});
