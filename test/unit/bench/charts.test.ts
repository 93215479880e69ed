import { describe, expect, it } from 'vitest';
import { renderBarChart, summarize } from '../../../bench/compare/charts.ts';

describe('bench charts', () => {
  it('summarizes runs as median with min–max', () => {
    expect(summarize([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3, n: 3 });
    expect(summarize([4, 1, 2, 3])).toEqual({ median: 2.5, min: 1, max: 4, n: 4 });
    expect(() => summarize([])).toThrow(/no samples/);
  });

  it('renders one bar per measured value, gaps for missing ones, and escapes labels', () => {
    const svg = renderBarChart({
      title: 'Warm <read>',
      unit: 'MiB/s',
      better: 'higher',
      groups: ['1 reader', '4 readers'],
      series: [
        {
          name: 'strata',
          values: [
            { median: 900, min: 850, max: 950 },
            { median: 1200, min: 1100, max: 1300 },
          ],
        },
        { name: 'rclone', values: [{ median: 400, min: 380, max: 420 }, undefined] },
      ],
    });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('Warm &lt;read&gt;');
    expect(svg.match(/<rect x=/g)?.length).toBe(3 + 2); // 3 bars + 2 legend swatches
    expect(svg).toContain('<title>strata: 1,200 MiB/s</title>');
    expect(svg).toContain('>–</text>');
  });
});
