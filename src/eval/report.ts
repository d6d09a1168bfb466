/** Writes an accuracy-vs-epsilon run as JSON, a Markdown table and a PNG plot. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RobustnessRow } from './robustness.ts';
import { markdownTable } from '../report/table.ts';
import { lineChart, writeChart } from '../report/plot.ts';

export interface RobustnessRun {
  dataset: string;
  samples: number;
  attack: string;
  command: string;
  seconds: number;
  rows: RobustnessRow[];
}

/** Pivot: one row per pipeline, one column per epsilon. */
export function pivot(rows: RobustnessRow[]): { headers: string[]; body: (string | number)[][] } {
  const eps = [...new Set(rows.map((r) => r.eps))].sort((a, b) => a - b);
  const pipes = [...new Set(rows.map((r) => r.pipeline))];
  return {
    headers: ['pipeline', ...eps.map((e) => `eps ${e}`)],
    body: pipes.map((p) => [p, ...eps.map((e) => rows.find((r) => r.pipeline === p && r.eps === e)?.accuracy ?? NaN)]),
  };
}

/**
 * `paperAxis`: x-axis labels show the source paper's epsilon (pixel epsilon x 10) beside ours,
 * and the Markdown table's epsilon headers carry the paper's label too.
 */
export async function writeRobustnessReport(dir: string, name: string, run: RobustnessRun, title: string, opts: { paperAxis?: boolean } = {}): Promise<void> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.json`), JSON.stringify(run, null, 1) + '\n');
  const { headers, body } = pivot(run.rows);
  writeFileSync(
    join(dir, `${name}.md`),
    `# ${title}\n\nDataset ${run.dataset}, ${run.samples} test images, attack ${run.attack}.\n\nCommand: \`${run.command}\`\n\n` +
      (opts.paperAxis ? 'Epsilon: pixel L-infinity on [0,1]; in brackets the paper\'s axis label (pixel epsilon x 10).\n\n' : '') +
      `${markdownTable(opts.paperAxis ? headers.map((h) => paperHeader(h)) : headers, body)}\n`,
  );
  const pipes = [...new Set(run.rows.map((r) => r.pipeline))];
  const chart = await lineChart({
    title,
    xTitle: opts.paperAxis ? 'epsilon (pixel, L-infinity); in brackets the paper\'s label (x 10)' : 'epsilon (pixel, L-infinity)',
    xSecondaryFactor: opts.paperAxis ? 10 : undefined,
    yTitle: 'accuracy',
    yDomain: accuracyDomain(run.rows.map((r) => r.accuracy)),
    series: pipes.map((p) => ({ name: p, points: run.rows.filter((r) => r.pipeline === p).map((r) => ({ x: r.eps, y: r.accuracy })) })),
  });
  writeChart(join(dir, name), chart);
}

/** `eps 0.26` -> `eps 0.26 (paper 2.6)`; other headers unchanged. */
export function paperHeader(h: string): string {
  const m = /^eps (\S+)$/.exec(h);
  return m ? `${h} (paper ${(Number(m[1]) * 10).toFixed(1)})` : h;
}

/** Y range of an accuracy plot: [0, 1], or from the tenth below the lowest value when all are >= 0.5 (so close curves separate). */
export function accuracyDomain(values: number[]): [number, number] {
  const min = Math.min(...values.filter((v) => Number.isFinite(v)));
  return [Number.isFinite(min) && min >= 0.5 ? Math.floor(min * 10) / 10 : 0, 1];
}
