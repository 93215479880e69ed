import { describe, expect, it } from 'vitest';
import { parseScopes } from '../../../../mount-client/cli/commands/token.ts';

describe('strata token create --scope', () => {
  it('accepts the comma-separated form README uses, repeated flags, or neither (read)', () => {
    expect(parseScopes(['read,write'])).toEqual(['read', 'write']);
    expect(parseScopes(['read', 'write', 'admin'])).toEqual(['read', 'write', 'admin']);
    expect(parseScopes(['read, write', 'write'])).toEqual(['read', 'write']);
    expect(parseScopes(undefined)).toEqual(['read']);
  });

  it('rejects an unknown scope, naming it and the accepted ones', () => {
    expect(() => parseScopes(['read,delete'])).toThrow(/unknown scope "delete": use read, write or admin/);
    expect(() => parseScopes([','])).toThrow(/use read, write or admin/);
  });
});
