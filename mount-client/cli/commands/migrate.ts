import type { RegisterCommand } from '../context.ts';

export const register: RegisterCommand = (program, ctx) => {
  program
    .command('migrate')
    .description('apply pending database migrations (idempotent; safe to run concurrently)')
    .option('--database-url <url>', 'PostgreSQL URL (env DATABASE_URL, else .strata/dev.json)')
    .action(async (opts: { databaseUrl?: string }) => {
      const url = opts.databaseUrl ?? process.env.DATABASE_URL ?? safeDevDatabaseUrl(ctx);
      if (!url) {
        throw new Error('no database: pass --database-url, set DATABASE_URL, or run `npm start` first');
      }
      // Server-only dependencies are loaded lazily so the mount client's graph stays free of pg.
      const { default: pg } = await import('pg');
      const { migrate } = await import('../../../functions/adapters/pg/migrate.ts');
      const client = new pg.Client({ connectionString: url });
      try {
        await client.connect();
      } catch (err) {
        throw new Error(
          `cannot connect to PostgreSQL at ${describeDatabase(url)} (${(err as Error).message}); start it, or pass --database-url / set DATABASE_URL`,
          { cause: err },
        );
      }
      try {
        const result = await migrate(client, { log: (l) => process.stderr.write(`${l}\n`) });
        ctx.print(result, () =>
          result.applied.length
            ? `applied ${result.applied.length} migration(s): ${result.applied.join(', ')}`
            : `database is up to date (${result.alreadyApplied} migrations applied)`,
        );
      } finally {
        await client.end();
      }
    });
};

function safeDevDatabaseUrl(ctx: Parameters<RegisterCommand>[1]): string | undefined {
  try {
    return ctx.config().dev?.databaseUrl;
  } catch {
    return undefined;
  }
}

/** host:port/database of a PostgreSQL URL, never its user or password (error messages get logged). */
export function describeDatabase(url: string): string {
  try {
    const u = new URL(url);
    return `${u.host}${u.pathname}`;
  } catch {
    return 'the given URL (it does not parse: use postgres://user:password@host:5432/db)';
  }
}
