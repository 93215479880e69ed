import { describe, expect, it } from 'vitest';
import { renderBarChart, summarize } from '../../../bench/compare/charts.ts';
import {
  advantage,
  advantageBound,
  type BenchMeta,
  type BenchResults,
  buildCharts,
  comparisonTable,
  demoteHeadings,
  emptyResults,
  evaluateTargets,
  headline,
  record,
  renderMarkdown,
} from '../../../bench/compare/report.ts';

const meta: BenchMeta = {
  date: '2026-01-01 00:00 UTC',
  mode: 'quick',
  runs: 3,
  bigFileMiB: 256,
  treeFiles: 1000,
  treeDirs: 111,
  treeBytes: 5 * 1024 * 1024,
  machine: { CPU: 'test × 2' },
  dropCaches: true,
  commit: 'abc1234',
  command: 'npm run bench',
  profiles: { local: 'direct', s3like: 'proxied' },
  toolCommands: { strata: 'strata mount' },
  notes: ['a note'],
};

function sample(): BenchResults {
  const r = emptyResults(structuredClone(meta));
  for (const [tool, cold, warm, ls] of [
    ['strata', [300, 320, 310], [900, 1000, 950], [0.5, 0.6, 0.4]],
    ['rclone', [100, 110, 90], [400, 450, 500], [3, 4, 5]],
    ['s3fs', [300, 290, 310], [600, 700, 650], [6, 7, 8]],
  ] as const) {
    for (const v of cold) record(r, 's3like', tool, 'seq_cold_1', v);
    for (const v of warm) record(r, 's3like', tool, 'seq_warm_1', v);
    for (const v of ls) record(r, 's3like', tool, 'lslr_cold', v);
  }
  record(r, 's3like', 'strata', 'visibility', 1.2);
  record(r, 's3like', 'ceiling', 'raw_get', 400);
  record(r, 's3like', 'ceiling', 'fuse_ceiling', 1000);
  return r;
}

describe('summarize', () => {
  it('takes the median of odd and even counts with min and max', () => {
    expect(summarize([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3, n: 3 });
    expect(summarize([4, 1, 3, 2])).toEqual({ median: 2.5, min: 1, max: 4, n: 4 });
    expect(() => summarize([])).toThrow(/no samples/);
  });
});

describe('aggregation and ratios', () => {
  it('records samples per profile, tool and metric and refuses non-finite values', () => {
    const r = sample();
    expect(r.samples.s3like?.strata?.seq_cold_1).toEqual([300, 320, 310]);
    expect(() => record(r, 'local', 'strata', 'seq_cold_1', Number.NaN)).toThrow(/not finite/);
  });

  it('expresses advantage so that > 1 means the first is better in either direction', () => {
    expect(advantage(300, 100, 'higher')).toBe(3);
    expect(advantage(0.5, 5, 'lower')).toBe(10);
  });

  it('turns a peer cut off at the time limit into a lower bound', () => {
    const r = sample();
    record(r, 's3like', 'strata', 'find_cold', 2);
    r.cutoffs = [{ profile: 's3like', tool: 's3fs', metric: 'find_cold', seconds: 30 }];
    const m = { id: 'find_cold', label: 'find', unit: 's' as const, better: 'lower' as const };
    expect(advantageBound(r, 's3like', 's3fs', m)).toEqual({ value: 15, bound: '>' });
    const targets = evaluateTargets(r).filter((t) => t.description.includes('`find`'));
    expect(targets.find((t) => t.description.includes('s3fs'))).toMatchObject({ met: true, bound: '>' });
    // rclone has no find sample and no cutoff: not measurable.
    expect(targets.find((t) => t.description.includes('rclone'))?.met).toBeUndefined();
    expect(comparisonTable(r, 's3like')).toContain('> 30.0 (cut off)');
    // A tool that finished some runs before being cut off shows both.
    record(r, 's3like', 'rclone', 'find_cold', 12);
    r.cutoffs.push({ profile: 's3like', tool: 'rclone', metric: 'find_cold', seconds: 30 });
    expect(comparisonTable(r, 's3like')).toContain('| 12.0 in 1 run, then > 30.0 (cut off) |');
  });
});

describe('demoteHeadings', () => {
  it('nests area headings one level deeper but leaves fenced shell comments alone', () => {
    expect(demoteHeadings('# A\n## B\n```\n# comment\n```\n#hashtag')).toBe(
      '## A\n### B\n```\n# comment\n```\n#hashtag',
    );
  });
});

describe('targets', () => {
  it('evaluates the issue targets on medians', () => {
    const t = evaluateTargets(sample());
    const get = (d: string) => t.find((x) => x.profile === 's3like' && x.description === d);
    expect(get('warm sequential read ≥ 2× rclone')).toMatchObject({ measured: 950 / 450, met: true });
    expect(get('warm sequential read ≥ 1.5× s3fs')).toMatchObject({ measured: 950 / 650, met: false });
    expect(get('cold sequential read ≥ 1.0× s3fs')?.met).toBe(true);
    expect(get('`ls -lR` cold ≥ 10× faster than rclone')?.met).toBe(false); // 4 / 0.5 = 8
    expect(get('`ls -lR` cold ≥ 10× faster than s3fs')?.met).toBe(true); // 7 / 0.5 = 14
    expect(get('new-file visibility ≤ 2 s (seconds, median)')).toMatchObject({ measured: 1.2, met: true });
  });
});

describe('report', () => {
  it('renders tables with median (min–max), ratios, charts and the area files verbatim', () => {
    const r = sample();
    r.failures.push({ profile: 's3like', tool: 'rclone', step: 'upload big', error: 'InvalidPart | x' });
    const charts = buildCharts(r);
    expect(charts.map((c) => c.file)).toEqual(
      expect.arrayContaining(['benchmarks/s3like-read.svg', 'benchmarks/s3like-metadata.svg']),
    );
    const md = renderMarkdown(
      r,
      charts,
      [{ area: 'mount', content: '# Mount benchmark\n\n| a | b |\n' }],
      'bench/results/x.json',
    );
    expect(md).toContain(
      '| cold sequential read, 1 reader | MB/s, higher is better | 310 (300–320) | 100 (90.0–110) | 300 (290–310) | 3.10× | 1.03× |',
    );
    expect(md).toContain(
      '![Sequential read throughput — S3-like (injected TTFB)](benchmarks/s3like-read.svg)',
    );
    expect(md).toContain('## Mount benchmark'); // demoted one level under "Per-area benchmarks"
    expect(md).toContain('InvalidPart \\| x');
    expect(md).toContain('| s3like | warm sequential read ≥ 2× rclone | 2.11× | **met** |');
    expect(md).not.toContain('Profile: local'); // no local samples, no local section
    expect(headline(r)[0]).toMatch(/^\*\*S3-like.*cold ×1 310 MB\/s \(3\.10× rclone, 1\.03× s3fs\)/);
  });

  it('draws one bar per tool and value with a whisker, and gaps for missing values', () => {
    const svg = renderBarChart({
      title: 't <&>',
      unit: 'MB/s',
      better: 'higher',
      groups: ['a', 'b'],
      series: [
        { name: 'strata', values: [{ median: 2, min: 1, max: 3 }, undefined] },
        {
          name: 'rclone',
          values: [
            { median: 1, min: 1, max: 1 },
            { median: 4, min: 3, max: 5 },
          ],
        },
      ],
    });
    expect(svg.match(/<rect x=/g)?.length).toBe(3 + 2); // 3 bars + 2 legend swatches
    expect(svg).toContain('t &lt;&amp;&gt;');
    expect(svg).toContain('<title>strata: 2.0 MB/s</title>');
  });
});
