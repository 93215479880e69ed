/**
 * On-demand reconcile: `POST /v1/reconcile` (admin) starts a run — `strata reconcile` and
 * `strata import` — and `GET /v1/reconcile/{id}` (admin) reports its progress and counts.
 */
import { z } from 'zod';
import { assertVisible, isUnrestricted, isVisible } from '../core/auth.ts';
import { NotFoundError, ValidationError } from '../core/errors.ts';
import { normalizePath } from '../core/paths.ts';
import { MAX_GRACE_SECONDS, startRun } from '../core/reconcile/plan.ts';
import { httpApi, parseWith, respond } from './http/index.ts';
import { reconcileWiring } from './reconcile-wiring.ts';

const startSchema = z
  .object({
    /** Strata directory to reconcile; default the whole index. */
    prefix: z.string().min(1).optional(),
    dryRun: z.boolean().optional(),
    graceSeconds: z.number().int().min(0).max(MAX_GRACE_SECONDS).optional(),
  })
  .strict();

export const handler = httpApi({
  'POST /v1/reconcile': {
    scope: 'admin',
    handler: async (req) => {
      const body = parseWith(startSchema, req.body ?? {}, 'body');
      // An admin limited to some prefixes reconciles inside them only: a run heals (and its report
      // samples the paths of) everything under its scope.
      if (body.prefix === undefined && !isUnrestricted(req.principal)) {
        throw new ValidationError(
          `this token is limited to ${req.principal.prefixes.join(', ')}: pass a prefix inside it (strata reconcile --prefix …)`,
        );
      }
      if (body.prefix !== undefined)
        assertVisible(req.principal, normalizePath(body.prefix, { directory: true }));
      const w = reconcileWiring();
      const { runId } = await startRun(
        {
          trigger: 'api',
          ...(body.prefix !== undefined ? { scope: body.prefix } : {}),
          ...(body.dryRun !== undefined ? { dryRun: body.dryRun } : {}),
          graceSeconds: body.graceSeconds ?? w.config.env.STRATA_RECONCILE_GRACE_SECONDS,
        },
        { listing: w.listing, runs: w.ledger, queue: w.queue },
        { dataPrefix: w.config.dataPrefix, maxShards: w.config.env.STRATA_RECONCILE_MAX_SHARDS },
      );
      const run = await w.ledger.get(runId);
      return respond(202, run, { location: `/v1/reconcile/${runId}` });
    },
  },
  'GET /v1/reconcile/{id}': {
    scope: 'admin',
    handler: async (req) => {
      const id = req.params.id ?? '';
      const run = await reconcileWiring().ledger.get(id);
      // A run outside a prefix-limited token's prefixes does not exist for it (its samples name paths).
      if (!run || !isVisible(req.principal, run.scope))
        throw new NotFoundError(`no reconcile run ${JSON.stringify(id)}; start one with POST /v1/reconcile`);
      return run;
    },
  },
});
