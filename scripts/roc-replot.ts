/**
 * Redraws the ROC plots of `vqguard detect-eval --report <dir>` from the curves stored in its
 * <attack>.json (no attack is re-run), with the current rocChart (log-scale FPR axis, the 1%
 * FPR point marked). Same file names and curve selection as detect-eval.
 *
 *   node --import tsx scripts/roc-replot.ts reports/detection/full reports/detection/split2-full ...
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { rocChart, writeChart } from '../src/report/plot.ts';

interface Stored { pipelines: string[]; curves: { eps: number; score: string; points: { fpr: number; tpr: number }[]; auc: number }[] }

for (const dir of process.argv.slice(2)) {
  for (const attack of ['fgsm', 'pgd']) {
    const file = join(dir, `${attack}.json`);
    if (!existsSync(file)) continue;
    const r = JSON.parse(readFileSync(file, 'utf8')) as Stored;
    const keep = ['combined', 'recon', 'l1', 'js', `${r.pipelines[0]}:recon`, `${r.pipelines[0]}:l1`];
    for (const eps of new Set(r.curves.map((c) => c.eps))) {
      const curves = r.curves.filter((c) => c.eps === eps && keep.includes(c.score));
      const out = join(dir, `roc-${attack}-eps${eps}`);
      writeChart(out, await rocChart(curves.map((c) => ({ name: c.score, points: c.points, auc: c.auc })), { title: `ROC, ${attack} eps ${eps} (successful attacks)` }));
      process.stdout.write(`${out}.png\n`);
    }
  }
}
