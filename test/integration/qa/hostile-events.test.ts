/**
 * Hostile SQS messages for the indexer (QA sweep 2): whatever arrives — not JSON, not an S3 event,
 * records with missing fields or of the wrong type, keys outside the data prefix, keys that could
 * never be a Strata path (too long, NUL, NFD) — is logged with its SQS message id; only the
 * malformed messages are reported as failed (so SQS retries them and then moves them to the DLQ),
 * and the good ones in the same batch are indexed. Real PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { getObject } from '../../../functions/adapters/pg/index-store.ts';
import { RedisGuard } from '../../../functions/adapters/redis/client.ts';
import { parseConfig } from '../../../functions/config.ts';
import { getLogger } from '../../../functions/handlers/http/observability.ts';
import { createIndexer, type HeadFn, type IndexerDeps } from '../../../functions/handlers/indexer.ts';
import { startTestDb, type TestDb } from '../index/db.ts';
import { BUCKET, PREFIX, putEvent, sqsRecord } from '../index/s3-events.ts';

process.env.POWERTOOLS_METRICS_DISABLED = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';

let db: TestDb;
let deps: IndexerDeps;
const head: HeadFn = async () => ({ etag: 'e', contentType: 'text/plain' });

beforeAll(async () => {
  db = await startTestDb();
  deps = {
    config: parseConfig({ STRATA_BUCKET: BUCKET, STRATA_DATA_PREFIX: PREFIX, STRATA_CACHE_TTL_MS: '0' }),
    pool: db.pool,
    head,
    redis: new RedisGuard(undefined),
  };
});
afterAll(async () => {
  await db?.stop();
});

/** Every log call's attributes, by level, while `fn` runs. */
async function captureLogs<T>(fn: () => Promise<T>) {
  const logger = getLogger();
  const calls: Array<{ level: string; message: string; attrs: Record<string, unknown> }> = [];
  const spies = (['info', 'warn', 'error'] as const).map((level) =>
    vi.spyOn(logger, level).mockImplementation(((message: string, attrs: Record<string, unknown>) => {
      calls.push({ level, message, attrs: attrs ?? {} });
    }) as never),
  );
  try {
    return { result: await fn(), calls };
  } finally {
    for (const s of spies) s.mockRestore();
  }
}

describe('indexer under hostile messages', () => {
  it('reports malformed messages alone with their ids, logs ignored keys with their ids, indexes the rest', async () => {
    const malformed: Record<string, string> = {
      'not-json': '{"Records": [',
      'null-record': '{"Records":[null]}',
      'string-record': '{"Records":["ObjectCreated:Put"]}',
      'records-not-array': '{"Records":"x"}',
      eventbridge: JSON.stringify({ 'detail-type': 'Object Created', source: 'aws.s3', detail: {} }),
      'missing-key': JSON.stringify({
        Records: [
          {
            eventName: 'ObjectCreated:Put',
            eventTime: new Date().toISOString(),
            s3: { bucket: { name: BUCKET }, object: { size: 1, eTag: 'e', sequencer: '01' } },
          },
        ],
      }),
      'bad-sequencer': putEvent('data/seq', 1, 1, 'e').replace(/"sequencer":"[0-9A-F]+"/, '"sequencer":"zz"'),
      'bad-encoding': putEvent('data/pct', 1, 1, 'e').replace('"key":"data/pct"', '"key":"data/%E0%A4%A"'),
    };
    const ignored: Record<string, string> = {
      outside: putEvent('elsewhere/x', 1, 1, 'e'),
      'too-long': putEvent(`data/${'a'.repeat(1100)}`, 1, 1, 'e'),
      nul: putEvent('data/a\u0000b', 1, 1, 'e'),
      nfd: putEvent('data/e\u0301', 1, 1, 'e'),
      'folder-marker': putEvent('data/console folder/', 1, 0, 'e'),
    };
    const records = [
      ...Object.entries(malformed).map(([id, body]) => sqsRecord(body, id)),
      ...Object.entries(ignored).map(([id, body]) => sqsRecord(body, id)),
      sqsRecord(putEvent('data/good', 1, 3, 'e'), 'good'),
    ];
    const { result, calls } = await captureLogs(() => createIndexer(() => deps)({ Records: records }));

    // Prepare / Act done; Assess: exactly the malformed messages go back to SQS.
    expect(result.batchItemFailures.map((f) => f.itemIdentifier).sort()).toEqual(
      Object.keys(malformed).sort(),
    );
    expect(await getObject(db.pool, '/good')).toMatchObject({ state: 'active', size: 3 });
    for (const id of Object.keys(malformed)) {
      const line = calls.find((c) => c.level === 'error' && c.attrs.messageId === id);
      expect(line, id).toBeDefined();
      expect(String(line?.attrs.error)).toMatch(/malformed S3 event message|not valid form-URL|sequencer/);
    }
    // Ignored keys are not retried (they can never be indexed) but each is logged with its message.
    for (const id of Object.keys(ignored)) {
      const line = calls.find((c) => c.level === 'warn' && c.attrs.messageId === id);
      expect(line, id).toBeDefined();
      expect(String(line?.attrs.reason)).toMatch(
        id === 'folder-marker'
          ? /a folder marker .* directories exist through the files/
          : /outside|cannot be a Strata path/,
      );
      // A huge key is logged shortened, never whole.
      expect(String(line?.attrs.key).length).toBeLessThanOrEqual(260);
    }
  });
});
