import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import {
  bootstrapAdminToken,
  createHandler,
  type MigrateDeps,
  PHYSICAL_ID,
} from '../../../functions/handlers/migrate.ts';

function event(type: 'Create' | 'Update' | 'Delete'): CloudFormationCustomResourceEvent {
  return {
    RequestType: type,
    ServiceToken: 'arn:fn',
    ResponseURL: 'https://cfn-response.example/put',
    StackId: 'stack-1',
    RequestId: 'req-1',
    LogicalResourceId: 'Migrations',
    ResourceType: 'Custom::StrataMigrations',
    ResourceProperties: { ServiceToken: 'arn:fn', checksum: 'abc' },
    ...(type === 'Create' ? {} : { PhysicalResourceId: PHYSICAL_ID, OldResourceProperties: {} }),
  } as CloudFormationCustomResourceEvent;
}

function fakeDeps(run: MigrateDeps['run']) {
  const responses: Array<{ url: string; body: Record<string, unknown> }> = [];
  let runs = 0;
  const deps: MigrateDeps = {
    run: () => {
      runs++;
      return run();
    },
    respond: async (url, body) => {
      responses.push({ url, body: JSON.parse(body) });
    },
    log: () => {},
  };
  return { deps, responses, runs: () => runs };
}

const context = (remainingMs = 300_000) => ({
  getRemainingTimeInMillis: () => remainingMs,
  logStreamName: 'log-1',
});

describe('migrate custom resource', () => {
  it('applies migrations on Create and answers SUCCESS with a stable physical id', async () => {
    const f = fakeDeps(async () => ({ applied: ['0001_tokens'], alreadyApplied: 0 }));
    await createHandler(() => f.deps)(event('Create'), context());
    expect(f.runs()).toBe(1);
    expect(f.responses).toHaveLength(1);
    expect(f.responses[0]!.url).toBe('https://cfn-response.example/put');
    expect(f.responses[0]!.body).toMatchObject({
      Status: 'SUCCESS',
      PhysicalResourceId: PHYSICAL_ID,
      StackId: 'stack-1',
      RequestId: 'req-1',
      LogicalResourceId: 'Migrations',
      Data: { applied: '0001_tokens', alreadyApplied: '0' },
    });
  });

  it('never touches the database on Delete', async () => {
    const f = fakeDeps(async () => {
      throw new Error('must not run');
    });
    await createHandler(() => f.deps)(event('Delete'), context());
    expect(f.runs()).toBe(0);
    expect(f.responses[0]!.body.Status).toBe('SUCCESS');
  });

  it('answers FAILED with the reason when a migration fails', async () => {
    const f = fakeDeps(async () => {
      throw new Error('migration 0010_index failed: syntax error');
    });
    await createHandler(() => f.deps)(event('Update'), context());
    expect(f.responses[0]!.body.Status).toBe('FAILED');
    expect(f.responses[0]!.body.Reason).toContain('0010_index failed');
  });

  it('answers FAILED before the Lambda timeout when migrations hang, exactly once', async () => {
    const f = fakeDeps(() => new Promise(() => {}));
    // 10 s guard margin: 10_050 ms remaining leaves 50 ms for the work.
    await createHandler(() => f.deps)(event('Create'), context(10_050));
    expect(f.responses).toHaveLength(1);
    expect(f.responses[0]!.body.Status).toBe('FAILED');
    expect(f.responses[0]!.body.Reason).toMatch(/did not finish/);
  });
});

describe('bootstrapAdminToken', () => {
  function fakeDb(existing: number) {
    const queries: string[] = [];
    return {
      queries,
      query: async (text: string) => {
        queries.push(text);
        return { rows: text.startsWith('SELECT count') ? [{ n: String(existing) }] : [] };
      },
    };
  }

  it('mints an admin token into the secret on a fresh database', async () => {
    const db = fakeDb(0);
    const sent: any[] = [];
    const made = await bootstrapAdminToken(db as never, 'arn:secret', {
      send: async (c: any) => sent.push(c.input),
    } as never);
    expect(made).toBe(true);
    expect(db.queries.some((q) => q.startsWith('INSERT INTO tokens'))).toBe(true);
    expect(sent).toHaveLength(1);
    expect(sent[0].SecretId).toBe('arn:secret');
    expect(sent[0].SecretString.length).toBeGreaterThan(20);
  });

  it('does nothing once any token exists (a revoked bootstrap token is never re-created)', async () => {
    const db = fakeDb(1);
    const sent: any[] = [];
    expect(
      await bootstrapAdminToken(db as never, 'arn:secret', { send: async (c: any) => sent.push(c) } as never),
    ).toBe(false);
    expect(db.queries).toHaveLength(1);
    expect(sent).toHaveLength(0);
  });
});
