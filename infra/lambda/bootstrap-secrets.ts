/**
 * Injected into every Lambda bundle by StrataFunction (esbuild `inject`): resolves the Secrets
 * Manager references the CDK app put in the environment into DATABASE_URL / UPSTASH_* once per
 * execution environment, before any handler module reads its configuration. Top-level await is
 * legal here because the bundles are ESM.
 */
import { loadSecretsIntoEnv } from '../../functions/adapters/aws/secrets.ts';

await loadSecretsIntoEnv(process.env);
