import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { describeDatabase } from '../../../../mount-client/cli/commands/migrate.ts';

describe('strata migrate', () => {
  it('names the database it could not reach by host, port and name only', () => {
    expect(describeDatabase('postgres://strata:hunter2@db.internal:5433/strata')).toBe(
      'db.internal:5433/strata',
    );
    expect(describeDatabase('not a url :hunter2@')).not.toContain('hunter2');
  });

  it('an unreachable database says how to fix it, exits 1 and prints no password', () => {
    const bin = new URL('../../../../bin/strata.js', import.meta.url).pathname;
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    const r = spawnSync(
      process.execPath,
      [bin, 'migrate', '--database-url', 'postgres://u:hunter2@127.0.0.1:1/db'],
      {
        encoding: 'utf8',
        env: { ...process.env, STRATA_DEV_JSON: '/nonexistent' },
        timeout: 60_000,
      },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /cannot connect to PostgreSQL at 127\.0\.0\.1:1\/db \(.*ECONNREFUSED.*\); start it, or pass --database-url/,
    );
    expect(r.stderr).not.toContain('hunter2');
  });
});
