/**
 * Token administration (`admin` scope): create (the secret is in this one response only), list
 * (never secrets or hashes), revoke. An admin token limited to prefixes can only mint tokens within
 * its own prefixes and sees/revokes only tokens confined to them, so delegation never widens access.
 */
import { z } from 'zod';
import { createToken, listTokens, revokeToken, type TokenInfo } from '../adapters/pg/tokens.ts';
import { isUnrestricted, isVisible, type Principal } from '../core/auth.ts';
import { ForbiddenError, NotFoundError } from '../core/errors.ts';
import { normalizePath } from '../core/paths.ts';
import { type ApiRequest, forgetToken, httpApi, parseWith, respond } from './http/index.ts';

const createBody = z
  .object({
    name: z.string().min(1).max(200),
    scopes: z.array(z.enum(['read', 'write', 'admin'])).min(1),
    prefixes: z.array(z.string()).min(1).optional(),
    /** Lifetime in seconds (alternative to expiresAt). */
    expiresInSeconds: z.number().int().positive().optional(),
    expiresAt: z.iso.datetime({ offset: true }).optional(),
  })
  .refine((b) => !(b.expiresAt && b.expiresInSeconds), {
    message: 'give expiresAt or expiresInSeconds, not both',
  });

function within(principal: Principal, prefixes: string[]): boolean {
  return prefixes.every((p) => isVisible(principal, p));
}

function toView(t: TokenInfo) {
  return {
    id: t.id,
    name: t.name,
    scopes: t.scopes,
    prefixes: t.prefixes,
    createdAt: t.createdAt.toISOString(),
    expiresAt: t.expiresAt?.toISOString() ?? null,
    revokedAt: t.revokedAt?.toISOString() ?? null,
    lastUsedAt: t.lastUsedAt?.toISOString() ?? null,
  };
}

async function create(req: ApiRequest) {
  const body = parseWith(createBody, req.body ?? {}, 'body');
  // Stored in directory form with a trailing slash: `/team-a/`.
  const prefixes = (body.prefixes ?? ['/']).map((p) => {
    const dir = normalizePath(p, { directory: true });
    return dir === '/' ? '/' : `${dir}/`;
  });
  if (!within(req.principal, prefixes)) {
    throw new ForbiddenError('a token can only grant prefixes within its own prefixes');
  }
  const expiresAt = body.expiresAt
    ? new Date(body.expiresAt)
    : body.expiresInSeconds
      ? new Date(Date.now() + body.expiresInSeconds * 1000)
      : undefined;
  // Delegation never widens access in time either: an expiring token cannot mint a longer-lived one.
  const limit = req.principal.expiresAt;
  if (limit && (!expiresAt || expiresAt.getTime() > limit.getTime())) {
    throw new ForbiddenError(
      `this token expires at ${limit.toISOString()}; a token it creates must expire by then (strata token create --expires with a shorter lifetime)`,
    );
  }
  const { id, token } = await createToken(req.deps.pool, {
    name: body.name,
    scopes: body.scopes,
    prefixes,
    expiresAt,
  });
  return respond(201, {
    id,
    token,
    name: body.name,
    scopes: body.scopes,
    prefixes,
    expiresAt: expiresAt?.toISOString() ?? null,
  });
}

async function list(req: ApiRequest) {
  const all = await listTokens(req.deps.pool);
  const visible = isUnrestricted(req.principal) ? all : all.filter((t) => within(req.principal, t.prefixes));
  return { tokens: visible.map(toView) };
}

async function revoke(req: ApiRequest) {
  const id = req.params.id ?? '';
  const all = await listTokens(req.deps.pool);
  const target = all.find((t) => t.id === id);
  if (!target || (!isUnrestricted(req.principal) && !within(req.principal, target.prefixes))) {
    throw new NotFoundError(`no token with id ${JSON.stringify(id)}; list them with \`strata token list\``);
  }
  await revokeToken(req.deps.pool, id);
  forgetToken(id);
  return { id, revoked: true };
}

export const handler = httpApi({
  'POST /v1/tokens': { scope: 'admin', handler: create },
  'GET /v1/tokens': { scope: 'admin', handler: list },
  'DELETE /v1/tokens/{id}': { scope: 'admin', handler: revoke },
});
