/**
 * The runbook (docs/operations.md) keeps up with what it documents: every alarm the stack creates
 * has an entry (its logical id, as the alarm's name carries it), and every Prometheus series the
 * mount client registers is in the metrics table — and nothing documented there is gone.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../infra/constructs/strata-function.ts';
import { filesUnder } from './observability-files.ts';
import { type Synth, synthStage } from './support.ts';

const runbook = readFileSync(join(REPO_ROOT, 'docs/operations.md'), 'utf8');

let s: Synth;
// A synth takes 10-20 s on a busy 2-core machine.
beforeAll(() => {
  s = synthStage('dev');
}, 180_000);
afterAll(() => s?.cleanup());

describe('docs/operations.md', () => {
  it('has an entry for every alarm of the observability stack', () => {
    const ids = Object.keys(s.template('observability').findResources('AWS::CloudWatch::Alarm'));
    expect(ids.length).toBeGreaterThan(0);
    // Logical ids are `<construct id><hash>`; per-function ones are documented as `<Fn>Errors`/`<Fn>Throttles`.
    const documented = [...runbook.matchAll(/`([A-Z][A-Za-z0-9]*|<Fn>[A-Za-z]+)`/g)].map((m) => m[1]!);
    for (const id of ids) {
      const base = id.replace(/[0-9A-F]{8}$/, '');
      const perFunction = /(Errors|Throttles)$/.exec(base);
      const ok = documented.includes(base) || (perFunction && documented.includes(`<Fn>${perFunction[1]}`));
      expect(ok, `alarm ${base} has no entry in docs/operations.md`).toBeTruthy();
    }
  });

  it('lists exactly the Prometheus series the mount client registers', () => {
    const inCode = new Set<string>();
    for (const f of filesUnder(join(REPO_ROOT, 'mount-client'), '.ts')) {
      for (const m of readFileSync(f, 'utf8').matchAll(/'(strata_[a-z0-9_]+)'/g)) inCode.add(m[1]!);
    }
    expect(inCode.size).toBeGreaterThan(10);
    const table = runbook.slice(
      runbook.indexOf('## Mount metrics'),
      runbook.indexOf('### Suggested alert rules'),
    );
    const inDocs = new Set([...table.matchAll(/`(strata_[a-z0-9_]+)`/g)].map((m) => m[1]!));
    for (const name of inCode) {
      // Peer series are listed in docs/peers.md, which the runbook's table links (`strata_peer_*`).
      if (name.startsWith('strata_peer_')) continue;
      expect(
        inDocs.has(name),
        `${name} is registered by mount-client but has no row in docs/operations.md's "Mount metrics" table: add one (labels, when it moves)`,
      ).toBe(true);
    }
    for (const name of inDocs)
      expect(inCode.has(name), `${name} is documented but not registered`).toBe(true);
    expect(table).toContain('`strata_peer_*`');
    // The suggested alert rules query only series that exist (histograms through _bucket/_sum/_count).
    const rules = runbook.slice(runbook.indexOf('### Suggested alert rules'));
    const queried = [...rules.matchAll(/\b(strata_[a-z0-9_]+)\{?/g)].map((m) =>
      m[1]!.replace(/_(bucket|sum|count)$/, ''),
    );
    expect(queried.length).toBeGreaterThan(5);
    for (const name of queried) expect(inCode.has(name), `alert rule queries unknown ${name}`).toBe(true);
  });
});
