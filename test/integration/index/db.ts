/**
 * A throwaway PostgreSQL (embedded, or a scratch database on DATABASE_URL) with every migration
 * applied, for the index tests. Stopped in afterAll.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrate } from '../../../functions/adapters/pg/migrate.ts';
import { createPool, type Pool } from '../../../functions/adapters/pg/pool.ts';
import { startPostgres } from '../../../local/postgres.ts';

export interface TestDb {
  url: string;
  pool: Pool;
  stop(): Promise<void>;
}

export async function startTestDb(options: { sharedBuffers?: string } = {}): Promise<TestDb> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-index-'));
  const pg = await startPostgres({
    dataDir: join(dir, 'pg'),
    persist: false,
    databaseUrl: process.env.DATABASE_URL,
    ...(options.sharedBuffers ? { sharedBuffers: options.sharedBuffers } : {}),
    log: () => {},
  });
  const pool = createPool({ connectionString: pg.url, max: 8, statementTimeoutMs: 30_000 });
  await migrate(pool);
  return {
    url: pg.url,
    pool,
    async stop() {
      await pool.end();
      await pg.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
