/**
 * Credentials from AWS Secrets Manager, turned into the plain settings the rest of the server reads
 * (DATABASE_URL, UPSTASH_REDIS_REST_URL/TOKEN), so handlers never care where a secret came from.
 *
 * In AWS the CDK app sets DATABASE_SECRET_ARN (+ DATABASE_HOST, the RDS Proxy endpoint) and
 * UPSTASH_SECRET_ARN; every Lambda bundle resolves them once at cold start before the handler module
 * runs (secretsEntry in infra/constructs/strata-function.ts). Locally DATABASE_URL / UPSTASH_* are set directly and
 * nothing here calls AWS.
 */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { StrataError } from '../../core/errors.ts';

export class SecretError extends StrataError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('secret_unavailable', message, options);
  }
}

/** The JSON RDS writes into a generated cluster secret. */
export interface DatabaseSecret {
  username: string;
  password: string;
  host: string;
  port?: number;
  dbname?: string;
}

/** The JSON the operator stores for Upstash (docs/deploy.md). */
export interface UpstashSecret {
  url: string;
  token: string;
}

export interface SecretReader {
  read(secretId: string): Promise<string>;
}

export function secretsManagerReader(client = new SecretsManagerClient({})): SecretReader {
  return {
    async read(secretId) {
      try {
        const out = await client.send(new GetSecretValueCommand({ SecretId: secretId }));
        if (!out.SecretString) throw new Error('secret has no SecretString');
        return out.SecretString;
      } catch (err) {
        // Only the ARN goes into the message: never any part of the value.
        throw new SecretError(
          `cannot read secret ${secretId}: ${(err as Error).message}; check the function role has secretsmanager:GetSecretValue on it`,
          { cause: err },
        );
      }
    },
  };
}

function parseJson<T>(secretId: string, raw: string, required: Array<keyof T>): T {
  let value: T;
  try {
    value = JSON.parse(raw) as T;
  } catch (err) {
    throw new SecretError(`secret ${secretId} is not JSON`, { cause: err });
  }
  const missing = required.filter((k) => !value?.[k]);
  if (missing.length) throw new SecretError(`secret ${secretId} lacks ${missing.join(', ')}`);
  return value;
}

/**
 * A PostgreSQL URL from a generated RDS secret. `host` overrides the secret's host (RDS Proxy instead
 * of the cluster writer). TLS is verified: RDS Proxy presents a publicly trusted ACM certificate.
 */
export function databaseUrlFromSecret(secret: DatabaseSecret, host?: string): string {
  const url = new URL('postgres://placeholder');
  url.hostname = host ?? secret.host;
  url.port = String(secret.port ?? 5432);
  url.username = encodeURIComponent(secret.username);
  url.password = encodeURIComponent(secret.password);
  url.pathname = `/${encodeURIComponent(secret.dbname ?? 'postgres')}`;
  url.searchParams.set('sslmode', 'verify-full');
  return url.toString();
}

/**
 * Fills DATABASE_URL and UPSTASH_REDIS_REST_URL/TOKEN in `env` from the secrets named by
 * DATABASE_SECRET_ARN / UPSTASH_SECRET_ARN, unless they are already set. Returns the names it set.
 */
export async function loadSecretsIntoEnv(
  env: NodeJS.ProcessEnv = process.env,
  reader: SecretReader = secretsManagerReader(),
): Promise<string[]> {
  const set: string[] = [];
  const jobs: Promise<void>[] = [];
  const dbArn = env.DATABASE_SECRET_ARN;
  if (dbArn && !env.DATABASE_URL) {
    jobs.push(
      reader.read(dbArn).then((raw) => {
        const secret = parseJson<DatabaseSecret>(dbArn, raw, ['username', 'password', 'host']);
        env.DATABASE_URL = databaseUrlFromSecret(secret, env.DATABASE_HOST || undefined);
        set.push('DATABASE_URL');
      }),
    );
  }
  const upstashArn = env.UPSTASH_SECRET_ARN;
  if (upstashArn && !env.UPSTASH_REDIS_REST_URL) {
    jobs.push(
      reader.read(upstashArn).then((raw) => {
        const secret = parseJson<UpstashSecret>(upstashArn, raw, ['url', 'token']);
        env.UPSTASH_REDIS_REST_URL = secret.url;
        env.UPSTASH_REDIS_REST_TOKEN = secret.token;
        set.push('UPSTASH_REDIS_REST_URL', 'UPSTASH_REDIS_REST_TOKEN');
      }),
    );
  }
  await Promise.all(jobs);
  return set;
}
