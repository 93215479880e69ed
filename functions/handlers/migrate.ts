/**
 * CloudFormation custom resource (Custom::StrataMigrations) that applies functions/migrations at
 * deploy, through functions/adapters/pg/migrate.ts, with credentials from Secrets Manager.
 *
 * The function is the custom resource's service token, so it answers CloudFormation itself: a PUT of
 * the result to the pre-signed ResponseURL. It must always answer — a custom resource that never
 * hears back blocks the stack for an hour — so a guard answers FAILED shortly before the Lambda
 * timeout, and every error becomes a FAILED response with the reason.
 *
 * Delete does nothing: removing the stack must never drop the index.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { CloudFormationCustomResourceEvent, Context } from 'aws-lambda';
import pg from 'pg';
import { loadSecretsIntoEnv } from '../adapters/aws/secrets.ts';
import { MIGRATIONS_DIR, type MigrateResult, migrate } from '../adapters/pg/migrate.ts';
import { createToken } from '../adapters/pg/tokens.ts';

export const PHYSICAL_ID = 'strata-migrations';
/** Answer this long before the Lambda would be killed, so CloudFormation always hears back. */
const GUARD_MS = 10_000;

/** Bundled: migrations are copied next to index.mjs (StrataFunction copyIntoBundle). From source: the repo dir. */
export function migrationsDir(): string {
  const bundled = join(dirname(fileURLToPath(import.meta.url)), 'migrations');
  return existsSync(bundled) ? bundled : MIGRATIONS_DIR;
}

export interface MigrateDeps {
  /** Runs the migrations and says what it did. */
  run(): Promise<MigrateResult>;
  /** Delivers the custom-resource response (a PUT to the ResponseURL in AWS). */
  respond(url: string, body: string): Promise<void>;
  log(message: string, extra?: Record<string, unknown>): void;
}

export async function putResponse(url: string, body: string): Promise<void> {
  // The pre-signed URL is signed without a content type: sending one would break the signature.
  const res = await fetch(url, { method: 'PUT', body, headers: { 'content-type': '' } });
  if (!res.ok) throw new Error(`CloudFormation response PUT failed: HTTP ${res.status}`);
}

/**
 * The first admin token: on a fresh database (no tokens at all) mint one and store it in the
 * stack's admin-token secret, so the operator can create named tokens with `strata token create`
 * (docs/deploy.md). Never runs again once any token exists, so it cannot resurrect a revoked one.
 */
export async function bootstrapAdminToken(
  db: pg.Pool,
  secretArn: string,
  secrets: Pick<SecretsManagerClient, 'send'>,
): Promise<boolean> {
  const { rows } = await db.query<{ n: string }>('SELECT count(*) AS n FROM tokens');
  if (Number(rows[0]?.n ?? 0) > 0) return false;
  const { token } = await createToken(db, { name: 'bootstrap-admin', scopes: ['read', 'write', 'admin'] });
  await secrets.send(new PutSecretValueCommand({ SecretId: secretArn, SecretString: token }));
  return true;
}

export function defaultDeps(): MigrateDeps {
  return {
    async run() {
      await loadSecretsIntoEnv(process.env);
      const url = process.env.DATABASE_URL;
      if (!url) throw new Error('DATABASE_URL or DATABASE_SECRET_ARN must be set for the migrate function');
      const pool = new pg.Pool({ connectionString: url, max: 1, application_name: 'strata-migrate' });
      try {
        const result = await migrate(pool, { dir: migrationsDir(), log: (line) => console.log(line) });
        const adminSecret = process.env.STRATA_ADMIN_TOKEN_SECRET_ARN;
        if (adminSecret) await bootstrapAdminToken(pool, adminSecret, new SecretsManagerClient({}));
        return result;
      } finally {
        await pool.end();
      }
    },
    respond: putResponse,
    log: (message, extra) => console.log(JSON.stringify({ level: 'INFO', message, ...extra })),
  };
}

type Outcome = { status: 'SUCCESS'; data: Record<string, string> } | { status: 'FAILED'; reason: string };

export function createHandler(makeDeps: () => MigrateDeps = defaultDeps) {
  return async (
    event: CloudFormationCustomResourceEvent,
    context: Pick<Context, 'getRemainingTimeInMillis' | 'logStreamName'>,
  ) => {
    const deps = makeDeps();
    let answered = false;
    const answer = async (outcome: Outcome) => {
      if (answered) return;
      answered = true;
      const body = JSON.stringify({
        Status: outcome.status,
        Reason:
          outcome.status === 'FAILED'
            ? `${outcome.reason} (log stream ${context.logStreamName})`.slice(0, 3500)
            : `see log stream ${context.logStreamName}`,
        PhysicalResourceId: PHYSICAL_ID,
        StackId: event.StackId,
        RequestId: event.RequestId,
        LogicalResourceId: event.LogicalResourceId,
        Data: outcome.status === 'SUCCESS' ? outcome.data : {},
      });
      await deps.respond(event.ResponseURL, body);
    };

    const guardMs = Math.max(0, context.getRemainingTimeInMillis() - GUARD_MS);
    let timer: NodeJS.Timeout | undefined;
    const guard = new Promise<Outcome>((resolve) => {
      timer = setTimeout(
        () =>
          resolve({
            status: 'FAILED',
            reason: `migrations did not finish within ${Math.round(guardMs / 1000)} s`,
          }),
        guardMs,
      );
    });

    const work = (async (): Promise<Outcome> => {
      if (event.RequestType === 'Delete') {
        deps.log('delete: migrations are never rolled back');
        return { status: 'SUCCESS', data: {} };
      }
      const result = await deps.run();
      deps.log('migrations applied', { applied: result.applied, alreadyApplied: result.alreadyApplied });
      return {
        status: 'SUCCESS',
        data: { applied: result.applied.join(','), alreadyApplied: String(result.alreadyApplied) },
      };
    })().catch((err: unknown): Outcome => {
      deps.log('migrations failed', { error: (err as Error).message });
      return { status: 'FAILED', reason: (err as Error).message };
    });

    try {
      await answer(await Promise.race([work, guard]));
    } finally {
      clearTimeout(timer);
    }
  };
}

export const handler = createHandler();
