/**
 * Authorization rules (pure): who may call what, and which paths a token may see.
 *
 * A token carries scopes (`read`, `write`, `admin`) and path prefixes. Outside its prefixes a path
 * does not exist for that token: callers get NotFoundError (404), never ForbiddenError (403), so a
 * token limited to `/team-a/` cannot even learn that `/team-b/x` exists. Scope failures are 403:
 * the caller already knows the route exists. `admin` implies every scope.
 */
import type { Scope } from './api-types.ts';
import { ForbiddenError, NotFoundError } from './errors.ts';
import { isWithin } from './paths.ts';

export interface Principal {
  tokenId: string;
  scopes: Scope[];
  /** Normalized directory prefixes (`/` = everything). */
  prefixes: string[];
  /** When the token stops working; a token it mints may not outlive it. Absent = never. */
  expiresAt?: Date;
}

export function hasScope(principal: Principal, scope: Scope): boolean {
  return principal.scopes.includes(scope) || principal.scopes.includes('admin');
}

export function requireScope(principal: Principal, scope: Scope): void {
  if (!hasScope(principal, scope)) {
    throw new ForbiddenError(
      `this token lacks the "${scope}" scope (it has: ${principal.scopes.join(', ')}); create one with \`strata token create --scope ${scope}\``,
    );
  }
}

export function isUnrestricted(principal: Principal): boolean {
  return principal.prefixes.some((p) => p === '/' || p === '');
}

/** True when `path` (file or directory) lies within one of the token's prefixes. */
export function isVisible(principal: Principal, path: string): boolean {
  return principal.prefixes.some((prefix) => isWithin(path, prefix));
}

/**
 * True when a directory may be listed: it is visible, or it is an ancestor of a prefix (listing
 * `/` with a `/team-a/` token shows only `team-a`).
 */
export function isNavigable(principal: Principal, dir: string): boolean {
  return isVisible(principal, dir) || principal.prefixes.some((prefix) => isWithin(prefix, dir));
}

/** Throws NotFoundError (never 403) when the path lies outside the token's prefixes. */
export function assertVisible(principal: Principal, path: string, what = 'path'): void {
  if (!isVisible(principal, path)) throw new NotFoundError(`${what} not found: ${path}`);
}

/** Throws NotFoundError unless the directory is visible or an ancestor of a visible prefix. */
export function assertNavigable(principal: Principal, dir: string): void {
  if (!isNavigable(principal, dir)) throw new NotFoundError(`directory not found: ${dir}`);
}
