/**
 * `strata token create|list|revoke` — API token administration (needs an `admin` token). The
 * secret is printed once by `create`; Strata stores only its hash.
 */
import type { RegisterCommand } from '../context.ts';
import { parseDuration } from './format.ts';

interface TokenView {
  id: string;
  name: string;
  scopes: string[];
  prefixes: string[];
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

const collect = (value: string, prior: string[] = []) => [...prior, value];

/**
 * `--scope read,write` (as README and `token list` write scopes) and `--scope read --scope write`
 * mean the same; each scope must be read, write or admin.
 */
export function parseScopes(values: string[] | undefined): string[] {
  const scopes = [...new Set((values ?? ['read']).flatMap((v) => v.split(',')).map((s) => s.trim()))];
  const bad = scopes.filter((s) => !['read', 'write', 'admin'].includes(s));
  if (bad.length > 0 || scopes.length === 0)
    throw new Error(
      `unknown scope ${bad.map((s) => JSON.stringify(s)).join(', ')}: use read, write or admin (e.g. --scope read,write)`,
    );
  return scopes;
}

export const register: RegisterCommand = (program, ctx) => {
  const token = program.command('token').description('create, list and revoke API tokens (admin scope)');

  token
    .command('create')
    .description('create a token; its secret is shown once')
    .requiredOption('--name <name>', 'what the token is for, e.g. "ci-uploader"')
    .option('--scope <scope>', 'read, write or admin; comma-separated or repeatable (default: read)', collect)
    .option('--prefix <path>', 'limit the token to this directory (repeatable), e.g. /team-a', collect)
    .option('--expires <duration>', 'lifetime, e.g. 12h or 30d (default: no expiry)')
    .option('--json', 'print JSON')
    .action(
      async (opts: {
        name: string;
        scope?: string[];
        prefix?: string[];
        expires?: string;
        json?: boolean;
      }) => {
        const scopes = parseScopes(opts.scope);
        const created = await ctx
          .api()
          .request<{ id: string; token: string; expiresAt: string | null }>('POST', '/v1/tokens', {
            body: {
              name: opts.name,
              scopes,
              ...(opts.prefix ? { prefixes: opts.prefix } : {}),
              ...(opts.expires ? { expiresInSeconds: parseDuration(opts.expires) } : {}),
            },
          });
        ctx.print(
          created,
          () =>
            `${created.token}\n\n(id ${created.id}; this secret is shown once — store it now${created.expiresAt ? `; expires ${created.expiresAt}` : ''})`,
          opts.json ?? ctx.flags.json,
        );
      },
    );

  token
    .command('list')
    .description('list tokens (never their secrets)')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const { tokens } = await ctx.api().request<{ tokens: TokenView[] }>('GET', '/v1/tokens');
      ctx.print(
        tokens,
        () =>
          tokens
            .map((t) => {
              const status = t.revokedAt
                ? 'revoked'
                : t.expiresAt && Date.parse(t.expiresAt) <= Date.now()
                  ? 'expired'
                  : 'active';
              return `${t.id}  ${status.padEnd(7)}  ${t.scopes.join(',').padEnd(16)}  ${t.prefixes.join(',')}  ${t.name}`;
            })
            .join('\n') || 'no tokens',
        opts.json ?? ctx.flags.json,
      );
    });

  token
    .command('revoke')
    .description('revoke a token at once (warm API instances notice within 5 s)')
    .argument('<id>', 'token id, as shown by `strata token list`')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { json?: boolean }) => {
      const r = await ctx
        .api()
        .request<{ id: string; revoked: boolean }>('DELETE', `/v1/tokens/${encodeURIComponent(id)}`);
      ctx.print(r, () => `revoked ${r.id}`, opts.json ?? ctx.flags.json);
    });
};
