/**
 * Result model, aggregation and report generation for `npm run bench` (issue 9). Pure functions:
 * the runner collects raw samples into BenchResults (saved as JSON in bench/results/), and
 * everything in docs/benchmarks.md — tables, ratios, targets, charts — is derived from that JSON,
 * so a report can be regenerated from a saved run (`npm run bench -- --report-only <json>`).
 */
import { type BarChart, renderBarChart, summarize } from './charts.ts';

export type Profile = 'local' | 's3like';
export const PROFILES: Profile[] = ['local', 's3like'];
export const TOOLS = ['strata', 'rclone', 's3fs'] as const;
export type Tool = (typeof TOOLS)[number];
/** Pseudo-tool holding the ceilings measured in the same run. */
export const CEILING = 'ceiling';

export interface MetricDef {
  id: string;
  label: string;
  unit: 'MB/s' | 'ops/s' | 's';
  better: 'higher' | 'lower';
  /** Which ceiling a read throughput is compared with (cold reads: the network path; warm: FUSE). */
  ceilings?: string[];
}

export const METRICS: MetricDef[] = [
  {
    id: 'seq_cold_1',
    label: 'cold sequential read, 1 reader',
    unit: 'MB/s',
    better: 'higher',
    ceilings: ['raw_get'],
  },
  {
    id: 'seq_cold_4',
    label: 'cold sequential read, 4 readers (aggregate)',
    unit: 'MB/s',
    better: 'higher',
    ceilings: ['raw_get'],
  },
  {
    id: 'reread',
    label: 're-read, same mount',
    unit: 'MB/s',
    better: 'higher',
    ceilings: ['fuse_ceiling', 'page_cache'],
  },
  {
    id: 'seq_warm_1',
    label: 'warm sequential read after remount, 1 reader',
    unit: 'MB/s',
    better: 'higher',
    ceilings: ['fuse_ceiling', 'page_cache'],
  },
  {
    id: 'seq_warm_4',
    label: 'warm sequential read, 4 readers (aggregate)',
    unit: 'MB/s',
    better: 'higher',
    ceilings: ['fuse_ceiling', 'page_cache'],
  },
  { id: 'rand4k_warm', label: 'warm random 4 KiB reads', unit: 'ops/s', better: 'higher' },
  { id: 'find_cold', label: '`find` over the tree, cold', unit: 's', better: 'lower' },
  { id: 'find_warm', label: '`find` over the tree, warm', unit: 's', better: 'lower' },
  { id: 'lslr_cold', label: '`ls -lR` over the tree, cold', unit: 's', better: 'lower' },
  { id: 'lslr_warm', label: '`ls -lR` over the tree, warm', unit: 's', better: 'lower' },
  { id: 'stat_cold', label: '`stat` of every file (known paths), cold', unit: 's', better: 'lower' },
  { id: 'stat_warm', label: '`stat` of every file (known paths), warm', unit: 's', better: 'lower' },
  { id: 'visibility', label: 'new file visible through the mount', unit: 's', better: 'lower' },
  { id: 'upload_tree', label: 'upload of the tree', unit: 's', better: 'lower' },
  { id: 'upload_big', label: 'upload of the big file', unit: 'MB/s', better: 'higher' },
];

export const CEILING_METRICS: MetricDef[] = [
  {
    id: 'page_cache',
    label: 'page-cache read (`cat` of a cached local file)',
    unit: 'MB/s',
    better: 'higher',
  },
  { id: 'fuse_ceiling', label: 'minimal fuse-native FS serving from memory', unit: 'MB/s', better: 'higher' },
  { id: 'raw_get', label: 'raw ranged GETs, 8 × 8 MiB concurrent (undici)', unit: 'MB/s', better: 'higher' },
];

export interface Failure {
  profile: Profile | 'setup';
  tool: string;
  step: string;
  error: string;
}

export interface BenchMeta {
  date: string;
  mode: 'quick' | 'full';
  runs: number;
  bigFileMiB: number;
  treeFiles: number;
  treeDirs: number;
  treeBytes: number;
  machine: Record<string, string>;
  dropCaches: boolean;
  commit: string;
  command: string;
  profiles: Record<Profile, string>;
  toolCommands: Record<string, string>;
  notes: string[];
}

export interface BenchResults {
  version: 1;
  meta: BenchMeta;
  /** profile → tool (or `ceiling`) → metric → one value per run. */
  samples: Record<string, Record<string, Record<string, number[]>>>;
  failures: Failure[];
  /** Operations stopped at a time limit: the true time is longer than `seconds`. */
  cutoffs?: Cutoff[];
}

export interface Cutoff {
  profile: Profile;
  tool: string;
  metric: string;
  seconds: number;
}

export function cutoffOf(
  r: BenchResults,
  profile: Profile,
  tool: string,
  metric: string,
): Cutoff | undefined {
  return r.cutoffs?.find((c) => c.profile === profile && c.tool === tool && c.metric === metric);
}

/**
 * Strata's advantage over a peer, also when one side was cut off at a time limit: then only a
 * bound is known (`>` when the peer was cut off, `<` when Strata was).
 */
export function advantageBound(
  r: BenchResults,
  profile: Profile,
  peer: string,
  m: MetricDef,
): { value: number; bound: '=' | '>' | '<' } | undefined {
  const a = stat(r, profile, 'strata', m.id);
  const b = stat(r, profile, peer, m.id);
  const ca = cutoffOf(r, profile, 'strata', m.id);
  const cb = cutoffOf(r, profile, peer, m.id);
  if (!ca && !cb) return a && b ? { value: advantage(a.median, b.median, m.better), bound: '=' } : undefined;
  // Only times are cut off (lower is better): a longer peer time makes Strata's advantage larger.
  if (cb && !ca && a) return { value: cb.seconds / a.median, bound: '>' };
  if (ca && !cb && b) return { value: b.median / ca.seconds, bound: '<' };
  return undefined;
}

export function emptyResults(meta: BenchMeta): BenchResults {
  return { version: 1, meta, samples: {}, failures: [], cutoffs: [] };
}

export function record(r: BenchResults, profile: Profile, tool: string, metric: string, value: number): void {
  if (!Number.isFinite(value))
    throw new Error(`record: ${profile}/${tool}/${metric} is not finite (${value})`);
  r.samples[profile] ??= {};
  const p = r.samples[profile];
  p[tool] ??= {};
  const t = p[tool];
  t[metric] ??= [];
  t[metric].push(value);
}

export type Summary = ReturnType<typeof summarize>;

export function stat(r: BenchResults, profile: Profile, tool: string, metric: string): Summary | undefined {
  const xs = r.samples[profile]?.[tool]?.[metric];
  return xs && xs.length > 0 ? summarize(xs) : undefined;
}

/**
 * How many times better `a` is than `b` (> 1 = `a` better), whichever direction is better for
 * the metric: throughput a/b, times b/a.
 */
export function advantage(a: number, b: number, better: 'higher' | 'lower'): number {
  return better === 'higher' ? a / b : b / a;
}

export function fmtValue(v: number, unit: MetricDef['unit']): string {
  if (unit === 's') return v < 10 ? v.toFixed(2) : v.toFixed(1);
  if (v >= 100) return Math.round(v).toLocaleString('en-US');
  return v.toFixed(1);
}

function cell(s: Summary | undefined, unit: MetricDef['unit'], cut?: Cutoff): string {
  if (cut && s)
    return `${fmtValue(s.median, unit)} in ${s.n} run${s.n > 1 ? 's' : ''}, then > ${fmtValue(cut.seconds, unit)} (cut off)`;
  if (cut) return `> ${fmtValue(cut.seconds, unit)} (cut off)`;
  if (!s) return '—';
  const range = s.n > 1 ? ` (${fmtValue(s.min, unit)}–${fmtValue(s.max, unit)})` : '';
  return `${fmtValue(s.median, unit)}${range}`;
}

function ratio(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? '—' : `${x >= 10 ? x.toFixed(0) : x.toFixed(2)}×`;
}

export function profileTitle(p: Profile): string {
  return p === 'local' ? 'local (no added latency)' : 'S3-like (injected TTFB)';
}

/** Tools × metrics with medians (min–max) and Strata's advantage over each peer. */
export function comparisonTable(r: BenchResults, profile: Profile): string {
  const lines = [
    '| measurement | unit | strata | rclone | s3fs | strata vs rclone | strata vs s3fs |',
    '|---|---|---:|---:|---:|---:|---:|',
  ];
  for (const m of METRICS) {
    const s = Object.fromEntries(TOOLS.map((t) => [t, stat(r, profile, t, m.id)]));
    const cut = (t: string) => cutoffOf(r, profile, t, m.id);
    if (TOOLS.every((t) => !s[t] && !cut(t))) continue;
    const vs = (peer: Tool) => {
      const a = advantageBound(r, profile, peer, m);
      return a ? `${a.bound === '=' ? '' : `${a.bound} `}${ratio(a.value)}` : '—';
    };
    const unit = `${m.unit}, ${m.better} is better`;
    lines.push(
      `| ${m.label} | ${unit} | ${TOOLS.map((t) => cell(s[t], m.unit, cut(t))).join(' | ')} | ${vs('rclone')} | ${vs('s3fs')} |`,
    );
  }
  return lines.join('\n');
}

/** Every tool's read throughput as a fraction of the ceilings measured in the same run. */
export function ceilingTable(r: BenchResults, profile: Profile): string {
  const lines = ['| ceiling | MB/s |', '|---|---:|'];
  for (const c of CEILING_METRICS)
    lines.push(`| ${c.label} | ${cell(stat(r, profile, CEILING, c.id), c.unit)} |`);
  lines.push('', '| read | ceiling | strata | rclone | s3fs |', '|---|---|---:|---:|---:|');
  for (const m of METRICS) {
    for (const cid of m.ceilings ?? []) {
      const c = stat(r, profile, CEILING, cid);
      if (!c) continue;
      const label = CEILING_METRICS.find((x) => x.id === cid)?.id ?? cid;
      const cols = TOOLS.map((t) => {
        const s = stat(r, profile, t, m.id);
        return s ? ratio(s.median / c.median) : '—';
      });
      lines.push(`| ${m.label} | ${label.replace('_', ' ')} | ${cols.join(' | ')} |`);
    }
  }
  return lines.join('\n');
}

export interface TargetResult {
  description: string;
  profile: Profile;
  /** The measured ratio (or seconds, for visibility). */
  measured: number | undefined;
  /** `>`/`<` when one side hit the time limit and only a bound is known. */
  bound?: '=' | '>' | '<';
  threshold: number;
  met: boolean | undefined;
}

/** The issue's targets, evaluated on medians. Undefined `met` = not measurable (a tool failed). */
export function evaluateTargets(r: BenchResults): TargetResult[] {
  const out: TargetResult[] = [];
  const vsPeer = (profile: Profile, metric: string, peer: Tool, threshold: number, description: string) => {
    const m = METRICS.find((x) => x.id === metric) as MetricDef;
    const a = advantageBound(r, profile, peer, m);
    // A bound decides the target only when it points the right way (> and above, < and below).
    const met =
      a === undefined
        ? undefined
        : a.bound === '='
          ? a.value >= threshold
          : a.bound === '>'
            ? a.value >= threshold
              ? true
              : undefined
            : a.value < threshold
              ? false
              : undefined;
    out.push({ description, profile, measured: a?.value, bound: a?.bound, threshold, met });
  };
  for (const p of PROFILES) {
    if (!r.samples[p]) continue;
    vsPeer(p, 'seq_warm_1', 'rclone', 2, 'warm sequential read ≥ 2× rclone');
    vsPeer(p, 'seq_warm_1', 's3fs', 1.5, 'warm sequential read ≥ 1.5× s3fs');
    vsPeer(p, 'seq_cold_1', 'rclone', 1.5, 'cold sequential read ≥ 1.5× rclone');
    vsPeer(p, 'seq_cold_1', 's3fs', 1.0, 'cold sequential read ≥ 1.0× s3fs');
    if (p === 's3like') {
      vsPeer(p, 'lslr_cold', 'rclone', 10, '`ls -lR` cold ≥ 10× faster than rclone');
      vsPeer(p, 'lslr_cold', 's3fs', 10, '`ls -lR` cold ≥ 10× faster than s3fs');
      vsPeer(p, 'find_cold', 'rclone', 2, '`find` cold ≥ 2× faster than rclone');
      vsPeer(p, 'find_cold', 's3fs', 2, '`find` cold ≥ 2× faster than s3fs');
    }
    const vis = stat(r, p, 'strata', 'visibility');
    const visCut = cutoffOf(r, p, 'strata', 'visibility');
    out.push({
      description: 'new-file visibility ≤ 2 s (seconds, median)',
      profile: p,
      measured: visCut ? visCut.seconds : vis?.median,
      bound: visCut ? '>' : '=',
      threshold: 2,
      met: visCut ? false : vis ? vis.median <= 2 : undefined,
    });
  }
  return out;
}

export function targetsTable(targets: TargetResult[]): string {
  const lines = ['| profile | target | measured | met? |', '|---|---|---:|---|'];
  for (const t of targets) {
    const measured =
      t.measured === undefined
        ? '—'
        : t.description.includes('seconds')
          ? `${t.bound === '>' ? '> ' : ''}${t.measured.toFixed(2)} s`
          : `${t.bound && t.bound !== '=' ? `${t.bound} ` : ''}${ratio(t.measured)}`;
    const met =
      t.met === undefined
        ? t.measured === undefined
          ? 'not measured'
          : 'undecided (a side was cut off)'
        : t.met
          ? '**met**'
          : 'not met';
    lines.push(`| ${t.profile} | ${t.description} | ${measured} | ${met} |`);
  }
  return lines.join('\n');
}

export interface ChartFile {
  file: string;
  title: string;
  svg: string;
}

/** One chart per profile and family of measurements; ceilings appear as their own series. */
export function buildCharts(r: BenchResults): ChartFile[] {
  const charts: ChartFile[] = [];
  for (const p of PROFILES) {
    if (!r.samples[p]) continue;
    const families: Array<{ key: string; title: string; ids: string[]; withCeilings?: boolean }> = [
      {
        key: 'read',
        title: 'Sequential read throughput',
        ids: ['seq_cold_1', 'seq_cold_4', 'reread', 'seq_warm_1', 'seq_warm_4'],
        withCeilings: true,
      },
      {
        key: 'metadata',
        title: 'Metadata over the tree and new-file visibility',
        ids: ['find_cold', 'find_warm', 'lslr_cold', 'lslr_warm', 'stat_cold', 'stat_warm', 'visibility'],
      },
      { key: 'random', title: 'Warm random 4 KiB reads', ids: ['rand4k_warm'] },
      { key: 'upload', title: 'Upload time of the tree', ids: ['upload_tree'] },
      { key: 'upload-big', title: 'Upload throughput of the big file', ids: ['upload_big'] },
    ];
    for (const f of families) {
      const defs = f.ids.map((id) => METRICS.find((m) => m.id === id) as MetricDef);
      const present = defs.filter((m) => TOOLS.some((t) => stat(r, p, t, m.id)));
      if (present.length === 0) continue;
      const tools = TOOLS.filter((t) => present.some((m) => stat(r, p, t, m.id)));
      const series: BarChart['series'] = tools.map((t) => ({
        name: t,
        values: present.map((m) => stat(r, p, t, m.id)),
      }));
      const groups = present.map((m) => shortLabel(m.id));
      if (f.withCeilings) {
        // One extra group per ceiling, drawn by a single `ceilings` series.
        const ceilings = CEILING_METRICS.map((c) => ({ c, s: stat(r, p, CEILING, c.id) })).filter((x) => x.s);
        if (ceilings.length > 0) {
          for (const x of series) x.values.push(...ceilings.map(() => undefined));
          series.push({
            name: 'ceilings',
            values: [...present.map(() => undefined), ...ceilings.map((x) => x.s)],
          });
          groups.push(...ceilings.map((x) => x.c.id.replace('_', ' ')));
        }
      }
      const unit = defs[0]?.unit ?? 's';
      const chart: BarChart = {
        title: `${f.title} — ${profileTitle(p)}`,
        unit: unit === 's' ? 'seconds' : unit,
        groups,
        series,
        better: defs[0]?.better ?? 'lower',
      };
      charts.push({ file: `benchmarks/${p}-${f.key}.svg`, title: chart.title, svg: renderBarChart(chart) });
    }
  }
  return charts;
}

function shortLabel(id: string): string {
  const map: Record<string, string> = {
    seq_cold_1: 'cold ×1',
    seq_cold_4: 'cold ×4',
    reread: 're-read',
    seq_warm_1: 'warm ×1',
    seq_warm_4: 'warm ×4',
    rand4k_warm: 'random 4 KiB',
    find_cold: 'find cold',
    find_warm: 'find warm',
    lslr_cold: 'ls -lR cold',
    lslr_warm: 'ls -lR warm',
    stat_cold: 'stat cold',
    stat_warm: 'stat warm',
    visibility: 'new file',
    upload_tree: 'tree',
    upload_big: 'big file',
  };
  return map[id] ?? id;
}

/** Headline: Strata's advantage over each peer on the main reads and metadata, S3-like first. */
export function headline(r: BenchResults): string[] {
  const out: string[] = [];
  for (const p of ['s3like', 'local'] as Profile[]) {
    if (!r.samples[p]) continue;
    const parts: string[] = [];
    for (const id of ['seq_cold_1', 'seq_warm_1', 'find_cold', 'lslr_cold', 'visibility']) {
      const m = METRICS.find((x) => x.id === id) as MetricDef;
      const a = stat(r, p, 'strata', id);
      if (!a) continue;
      const peers = (['rclone', 's3fs'] as Tool[])
        .map((t) => {
          const b = advantageBound(r, p, t, m);
          return b ? `${b.bound === '=' ? '' : `${b.bound} `}${ratio(b.value)} ${t}` : undefined;
        })
        .filter(Boolean);
      parts.push(
        `${shortLabel(id)} ${fmtValue(a.median, m.unit)} ${m.unit}${peers.length ? ` (${peers.join(', ')})` : ''}`,
      );
    }
    out.push(`**${profileTitle(p)}**: ${parts.join('; ')}`);
  }
  return out;
}

/** Markdown headings one level deeper, leaving fenced code (shell comments start with `# `) alone. */
export function demoteHeadings(md: string): string {
  let fenced = false;
  return md
    .split('\n')
    .map((line) => {
      if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
      return !fenced && /^#+ /.test(line) ? `#${line}` : line;
    })
    .join('\n');
}

export interface AreaDoc {
  area: string;
  content: string;
}

export function renderMarkdown(
  r: BenchResults,
  charts: ChartFile[],
  areas: AreaDoc[],
  jsonPath: string,
): string {
  const m = r.meta;
  const mib = (b: number) => (b / 1024 / 1024).toFixed(1);
  const out: string[] = [
    '# Benchmarks',
    '',
    '<!-- Generated by `npm run bench` (bench/run.ts) — edit the generator, not this file. -->',
    '',
    `Strata's mount against the clients users would pick instead — \`rclone mount\` and \`s3fs\` — on the same data, the same local S3 (fauxqs) and the same proxies, next to the ceilings of this machine measured in the same run. Generated ${m.date} (${m.mode} mode, commit ${m.commit}); raw samples in [\`${jsonPath}\`](../${jsonPath}).`,
    '',
    '## At a glance',
    '',
    'Ratios are Strata\'s advantage over the peer (> 1× = Strata better), medians of the runs. A "cut off" cell hit the per-operation time limit; a ratio involving it is a bound.',
    '',
    ...headline(r).map((l) => `- ${l}`),
    '',
    '### Targets (reported, not enforced)',
    '',
    targetsTable(evaluateTargets(r)),
    '',
    '## Setup',
    '',
    '```',
    m.command,
    '```',
    '',
    `- Machine: ${Object.entries(m.machine)
      .map(([k, v]) => `${k} ${v}`)
      .join('; ')}.`,
    `- Data: one ${m.bigFileMiB} MiB file of random bytes and a tree of ${m.treeFiles.toLocaleString('en-US')} files (${mib(m.treeBytes)} MiB, mixed sizes) in ${m.treeDirs} nested directories, loaded once with \`strata upload\`; every tool mounts the same bucket prefix.`,
    `- Runs: ${m.runs} per measurement; cells show the median and (min–max). Caches: each cold measurement starts on a fresh mount with an empty tool cache${m.dropCaches ? ' and the kernel page cache dropped (`echo 3 > /proc/sys/vm/drop_caches`)' : ' (dropping the kernel page cache was not permitted)'}. Warm = a remount on the cache the previous mount filled; re-read = the same mount again.`,
    ...Object.entries(m.profiles).map(([p, d]) => `- Profile **${profileTitle(p as Profile)}**: ${d}`),
    ...Object.entries(m.toolCommands).map(([t, c]) => `- ${t}: \`${c}\``),
    ...m.notes.map((n) => `- ${n}`),
    '',
  ];
  if (r.failures.length > 0) {
    out.push('### What did not run', '', '| profile | tool | step | error |', '|---|---|---|---|');
    for (const f of r.failures)
      out.push(
        `| ${f.profile} | ${f.tool} | ${f.step} | ${f.error.replace(/\|/g, '\\|').replace(/\n/g, ' ')} |`,
      );
    out.push('');
  }
  for (const p of PROFILES) {
    if (!r.samples[p]) continue;
    out.push(
      `## Profile: ${profileTitle(p)}`,
      '',
      comparisonTable(r, p),
      '',
      '### Ceilings and ratios to them',
      '',
      ceilingTable(r, p),
      '',
    );
    for (const c of charts.filter((x) => x.file.startsWith(`benchmarks/${p}-`)))
      out.push(`![${c.title}](${c.file})`, '');
  }
  if (areas.length > 0) {
    out.push(
      '## Per-area benchmarks',
      '',
      "Written by each area's own bench program; included verbatim.",
      '',
    );
    for (const a of areas) {
      // Demote the area's headings one level so they nest under this section.
      out.push(`<!-- docs/benchmarks/${a.area}.md -->`, demoteHeadings(a.content).trimEnd(), '');
    }
  }
  return `${out.join('\n')}\n`;
}
