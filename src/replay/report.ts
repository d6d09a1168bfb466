/** Writes a replay report: replay.json, replay.md, scores.png (and scores.svg). */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { renderVegaLite, writeChart, type Chart } from '../report/plot.ts';
import { markdownTable } from '../report/table.ts';
import type { PipelineReport, ReplayReport } from './replay.ts';

export const SUMMARY_HEADERS = ['pipeline', 'records', 'outputs', 'dead', 'flagged', 'flag rate', 'precision', 'recall', 'FPR', 'AUC', 'acc before', 'acc after', 'img/s'];

const num = (v: number | null | undefined): number | string => (v === null || v === undefined || !Number.isFinite(v) ? '-' : v);

/** One row per pipeline (CLI table and the Markdown overview). */
export function summaryRows(r: ReplayReport): (string | number)[][] {
  return r.pipelines.map((p) => [
    p.pipeline,
    p.counts.records,
    p.counts.outputs,
    p.counts.deadLetters,
    p.counts.flagged,
    num(p.flagRate),
    num(p.detection?.precision),
    num(p.detection?.recall),
    num(p.detection?.falsePositiveRate),
    num(p.detection?.auc),
    num(p.accuracy?.before),
    num(p.accuracy?.after),
    num(p.imagesPerSecond),
  ]);
}

function pipelineTable(p: PipelineReport): string {
  const rows: (string | number)[][] = [
    ['records', p.counts.records],
    ['guarded outputs', p.counts.outputs],
    ['dead letters', p.counts.deadLetters],
    ...Object.entries(p.counts.deadLettersByReason).map(([k, v]) => [`dead letters: ${k}`, v] as (string | number)[]),
    ['flagged', p.counts.flagged],
    ['flag rate', num(p.flagRate)],
    ['records with ground truth (attributes.adversarial)', p.counts.withGroundTruth],
    ['records with a label', p.counts.labelled],
  ];
  if (p.detection) {
    const d = p.detection;
    rows.push(
      ['true / false positives', `${d.truePositives} / ${d.falsePositives}`],
      ['false / true negatives', `${d.falseNegatives} / ${d.trueNegatives}`],
      ['detection precision', num(d.precision)],
      ['detection recall', num(d.recall)],
      ['false-positive rate', num(d.falsePositiveRate)],
      ['ROC AUC (combined score)', num(d.auc)],
    );
  }
  if (p.accuracy) {
    const a = p.accuracy;
    rows.push(
      ['accuracy before purification', num(a.before)],
      ['accuracy after purification', num(a.after)],
      ['accuracy before, attacked records', num(a.beforeOnAdversarial)],
      ['accuracy after, attacked records', num(a.afterOnAdversarial)],
    );
  }
  const st = p.scores.stats;
  const statRow = (name: string, s: typeof st.all | undefined) => (s ? [[`combined score ${name}: mean / p50 / p95`, `${fmt(s.mean)} / ${fmt(s.p50)} / ${fmt(s.p95)}`]] : []);
  rows.push(
    ['combined-score threshold', p.scores.threshold],
    ...statRow('(all)', st.all),
    ...statRow('(clean)', st.clean),
    ...statRow('(attacked)', st.adversarial),
    ['pipeline seconds', p.seconds],
    ['images / s (this pipeline)', num(p.imagesPerSecond)],
  );
  return markdownTable(['metric', 'value'], rows);
}

function fmt(v: number): string {
  return Number.isFinite(v) ? v.toFixed(3) : '-';
}

export function replayMarkdown(r: ReplayReport): string {
  const parts = r.range.partitions.map((p) => `${p.partition}: [${p.start}, ${p.end})`).join(', ');
  const spec = [r.range.spec.from && `from ${r.range.spec.from}`, r.range.spec.to && `to ${r.range.spec.to} (inclusive)`].filter(Boolean).join(', ') || 'whole topic';
  const lines = [
    `# Replay: ${r.topic}`,
    '',
    `Command: \`${r.command ?? '(library call)'}\``,
    '',
    `- Range: ${spec}; offsets per partition ${parts}`,
    `- Records read: ${r.records} in ${r.seconds.toFixed(1)} s (${r.imagesPerSecond.toFixed(1)} records/s over all ${r.pipelines.length} pipeline(s), micro-batches of ${r.batchSize})`,
    `- Models: ${r.models}; read with throwaway group \`${r.readGroupId}\` (no offsets committed)`,
    r.output ? `- Guarded records of \`${r.output.pipeline}\` republished to \`${r.output.topic}\`: ${r.output.produced}` : '- Not republished (no --output-topic)',
    `- Created: ${r.createdAt}`,
    '',
    '## Overview',
    '',
    markdownTable(SUMMARY_HEADERS, summaryRows(r)),
    '',
    'Precision, recall, FPR and AUC count records with `attributes.adversarial` (flagged = attacked); accuracy counts labelled records. img/s: records per second of that pipeline\'s processing alone.',
    '',
    '![combined-score distributions](scores.png)',
    '',
  ];
  for (const p of r.pipelines) {
    lines.push(`## ${p.pipeline}`, '', `Calibration: \`${p.calibration.file}\` (FPR ${p.calibration.fpr}, ${p.calibration.dataset}); models ${Object.entries(p.modelVersions).map(([k, v]) => `${k} ${v}`).join(', ')}`, '', pipelineTable(p), '');
  }
  return lines.join('\n');
}

/** Combined-score histograms per pipeline (share of each ground-truth class per bin), threshold as a rule. */
export function scoresChart(r: ReplayReport): Promise<Chart> {
  const rows: Record<string, unknown>[] = [];
  const truths = new Set<string>();
  for (const p of r.pipelines) {
    const e = p.scores.edges;
    const series: [string, number[] | undefined][] = p.scores.clean ? [['clean', p.scores.clean], ['attacked', p.scores.adversarial]] : [['all records', p.scores.all]];
    for (const [truth, counts] of series) {
      if (!counts) continue;
      const n = counts.reduce((a, b) => a + b, 0);
      if (!n) continue;
      truths.add(truth);
      counts.forEach((c, i) => rows.push({ kind: 'bin', pipeline: p.pipeline, truth, x0: e[i], x1: e[i + 1], share: c / n }));
    }
    rows.push({ kind: 'threshold', pipeline: p.pipeline, t: p.scores.threshold, label: `threshold ${p.scores.threshold.toFixed(2)}` });
  }
  const domain = ['clean', 'attacked', 'all records'].filter((t) => truths.has(t));
  const range = domain.map((t) => (t === 'clean' ? '#4c78a8' : t === 'attacked' ? '#e45756' : '#72b7b2'));
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: `Combined detection score by ground truth: ${r.topic} (${r.records} records)`, subtitle: 'share of each class per bin; flagged above the dashed calibrated threshold' },
    data: { values: rows },
    facet: { column: { field: 'pipeline', type: 'nominal', title: null, sort: r.pipelines.map((p) => p.pipeline), header: { labelFontSize: 13 } } },
    spec: {
      width: 340,
      height: 230,
      layer: [
        {
          transform: [{ filter: "datum.kind === 'bin'" }],
          mark: { type: 'bar', opacity: 0.6, binSpacing: 0 },
          encoding: {
            x: { field: 'x0', type: 'quantitative', title: 'combined score (logit)', scale: { zero: false } },
            x2: { field: 'x1' },
            y: { field: 'share', type: 'quantitative', title: 'share of records in class', stack: null },
            y2: { datum: 0 },
            color: { field: 'truth', type: 'nominal', title: null, scale: { domain, range }, legend: { orient: 'top' } },
          },
        },
        {
          transform: [{ filter: "datum.kind === 'threshold'" }],
          mark: { type: 'rule', strokeDash: [5, 4], color: '#222', strokeWidth: 1.5 },
          encoding: { x: { field: 't', type: 'quantitative' } },
        },
        {
          transform: [{ filter: "datum.kind === 'threshold'" }],
          mark: { type: 'text', align: 'left', dx: 4, dy: 2, baseline: 'top', fontSize: 10, color: '#222' },
          encoding: { x: { field: 't', type: 'quantitative' }, y: { value: 0 }, text: { field: 'label' } },
        },
      ],
    },
    resolve: { scale: { x: 'independent', y: 'independent' } },
  };
  return renderVegaLite(spec as unknown as TopLevelSpec);
}

/** Writes replay.json, replay.md and scores.png/.svg into dir; returns their paths. */
export async function writeReplayReport(dir: string, r: ReplayReport): Promise<{ json: string; markdown: string; png: string }> {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, 'replay.json');
  const markdown = join(dir, 'replay.md');
  writeFileSync(json, JSON.stringify(r, null, 1) + '\n');
  writeFileSync(markdown, replayMarkdown(r));
  writeChart(join(dir, 'scores'), await scoresChart(r));
  return { json, markdown, png: join(dir, 'scores.png') };
}
