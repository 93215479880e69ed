/**
 * Minimal SVG bar charts for docs/benchmarks.md: one group per measurement, one bar per tool,
 * a whisker for min–max. Hand-written because the charts are simple and a chart library would be
 * the largest dependency of the bench.
 */

export interface BarSeries {
  /** Tool name (legend entry), e.g. `strata`. */
  name: string;
  /** One value per group; undefined leaves a gap (tool failed or not measured). */
  values: Array<{ median: number; min: number; max: number } | undefined>;
}

export interface BarChart {
  title: string;
  unit: string;
  groups: string[];
  series: BarSeries[];
  /** Higher is better (throughput) or lower is better (latency/time); shown in the subtitle. */
  better: 'higher' | 'lower';
}

const COLORS = ['#2b6cb0', '#dd6b20', '#38a169', '#805ad5', '#718096', '#d53f8c'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmt(v: number): string {
  if (v >= 1000) return Math.round(v).toLocaleString('en-US');
  if (v >= 10) return v.toFixed(0);
  if (v >= 1) return v.toFixed(1);
  return v.toFixed(3);
}

export function renderBarChart(chart: BarChart): string {
  const barW = 22;
  const gap = 26;
  const groupW = chart.series.length * barW + gap;
  const left = 70;
  const top = 56;
  const plotH = 220;
  const width = Math.max(420, left + chart.groups.length * groupW + 20);
  const height = top + plotH + 70;
  const maxVal = Math.max(
    1e-9,
    ...chart.series.flatMap((s) => s.values.map((v) => (v ? Math.max(v.max, v.median) : 0))),
  );
  const y = (v: number) => top + plotH - (v / maxVal) * plotH;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="20" font-size="14" font-weight="bold">${esc(chart.title)}</text>`,
    `<text x="${left}" y="36" fill="#555">${esc(chart.unit)} — ${chart.better} is better; whiskers show min–max</text>`,
  );
  for (let i = 0; i <= 4; i++) {
    const v = (maxVal * i) / 4;
    parts.push(
      `<line x1="${left}" x2="${width - 10}" y1="${y(v)}" y2="${y(v)}" stroke="#e2e8f0"/>`,
      `<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end" fill="#555">${fmt(v)}</text>`,
    );
  }
  chart.groups.forEach((group, gi) => {
    const gx = left + gi * groupW + gap / 2;
    chart.series.forEach((s, si) => {
      const v = s.values[gi];
      const x = gx + si * barW;
      if (!v) {
        parts.push(
          `<text x="${x + barW / 2}" y="${top + plotH - 4}" text-anchor="middle" fill="#999">–</text>`,
        );
        return;
      }
      const color = COLORS[si % COLORS.length];
      parts.push(
        `<rect x="${x}" y="${y(v.median)}" width="${barW - 4}" height="${top + plotH - y(v.median)}" fill="${color}"><title>${esc(s.name)}: ${fmt(v.median)} ${esc(chart.unit)}</title></rect>`,
        `<line x1="${x + (barW - 4) / 2}" x2="${x + (barW - 4) / 2}" y1="${y(v.max)}" y2="${y(v.min)}" stroke="#1a202c"/>`,
      );
    });
    parts.push(
      `<text x="${gx + (chart.series.length * barW) / 2}" y="${top + plotH + 16}" text-anchor="middle">${esc(group)}</text>`,
    );
  });
  chart.series.forEach((s, si) => {
    const lx = left + si * 110;
    parts.push(
      `<rect x="${lx}" y="${height - 22}" width="12" height="12" fill="${COLORS[si % COLORS.length]}"/>`,
      `<text x="${lx + 16}" y="${height - 12}">${esc(s.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** Median, min and max of repeated runs. */
export function summarize(samples: number[]): { median: number; min: number; max: number; n: number } {
  if (samples.length === 0) throw new Error('summarize: no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, n: sorted.length };
}
