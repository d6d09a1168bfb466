/**
 * One table from every worst-case report in a folder (the `vqguard worst-case` runs are split
 * over several report files to fit the compute budget): per pipeline and epsilon, accuracy and
 * guard success with 95% intervals, and the budget (images x steps x restarts [x EOT], attack
 * paths) of that cell. Where several runs hold the same pipeline and epsilon, the one with the
 * most images, then the most restarts, is shown. Nothing is re-run. Also draws the table as two
 * plots (accuracy, guard success vs epsilon, a line per pipeline): worst-case-table-{accuracy,guard}.png.
 *
 *   node --import tsx scripts/worst-case-table.ts reports/robustness > reports/robustness/worst-case-table.md
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { markdownTable } from '../src/report/table.ts';
import { lineChart, writeChart } from '../src/report/plot.ts';

interface Cell {
  pipeline: string; eps: number; images: number; steps: number; restarts: number; eot: number;
  accuracy: number; accuracyCi: [number, number]; guardSuccess: number | null; guardCi: [number, number] | null;
  detector: string | null; flaggedAll: number | null; brokenBy: Record<string, number>;
}

const dir = process.argv[2] ?? 'reports/robustness';
const EPS = [0.1, 0.2, 0.3];
const files = readdirSync(dir).filter((f) => /^worst-case.*\.json$/.test(f)).sort();
const best = new Map<string, Cell & { file: string; models: string }>();
for (const f of files) {
  const r = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { command: string; cells: Cell[] };
  const at = /--models\s+(\S+)/.exec(r.command)?.[1] ?? 'models/mnist';
  for (const c of r.cells) {
    const name = at === 'models/mnist-at' && c.pipeline === 'undefended' ? 'adv-trained classifier (no purifier)' : c.pipeline;
    const key = `${name}@${c.eps}`;
    const cur = best.get(key);
    if (!cur || c.images > cur.images || (c.images === cur.images && c.restarts > cur.restarts)) best.set(key, { ...c, pipeline: name, file: f, models: at });
  }
}
const f2 = (v: number) => v.toFixed(2).replace(/^0/, '');
const ci = (c: [number, number] | null) => (c ? ` [${f2(c[0])}, ${f2(c[1])}]` : '');
const order = ['undefended', 'adv-trained classifier (no purifier)', 'full', 'split2', 'split2>full', 'full>split2', 'adv:split2>full', 'bits1', 'bits1>full', 'full-T1'];
const names = [...new Set([...best.values()].map((c) => c.pipeline))].sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99));
const rows = names.map((p) => {
  const cells = EPS.map((e) => best.get(`${p}@${e}`));
  const clean = best.get(`${p}@0`);
  // One budget per row, or each budget with the epsilons it applies to when the runs differ.
  const budgetOf = (c: Cell) => `${c.images} x ${c.steps} x ${c.restarts}${c.eot > 1 ? ` x EOT ${c.eot}` : ''}, ${Object.keys(c.brokenBy).join('+')}`;
  const budgets = new Map<string, number[]>();
  EPS.forEach((e, i) => { const c = cells[i]; if (c) budgets.set(budgetOf(c), [...(budgets.get(budgetOf(c)) ?? []), e]); });
  const budget = budgets.size === 1 ? [...budgets.keys()][0]! : [...budgets].map(([b, es]) => `${b} (eps ${es.join(', ')})`).join('; ');
  return [
    p,
    budget,
    clean ? `${f2(clean.accuracy)} / ${clean.flaggedAll === null ? '-' : f2(clean.flaggedAll)}` : '-',
    ...cells.flatMap((c) => (c ? [`${f2(c.accuracy)}${ci(c.accuracyCi)}`, c.detector ? `${f2(c.guardSuccess!)}${ci(c.guardCi)}` : 'no detector'] : ['-', '-'])),
    [...new Set(cells.filter(Boolean).map((c) => c!.file.replace(/\.json$/, '.md')))].join(', '),
  ];
});
process.stdout.write(
  `# Worst case per pipeline: accuracy and guard success at eps 0.1 / 0.2 / 0.3\n\n` +
    `Made by \`node --import tsx scripts/worst-case-table.ts ${dir}\` from the worst-case reports in this folder (commands in each .md).\n` +
    'Threat model: white-box, attacker ignores the detector; worst over the attack paths named (BPDA straight-through, BPDA purifier-as-identity, PGD on the classifier), success at any step; ' +
    'random pipelines: EOT gradients, broken when most of the EOT draws misclassify. Guard success = correct after purification or flagged at the calibrated 1% FPR. 95% Wilson intervals.\n' +
    'Clean = accuracy / flag rate on the same images at eps 0. The detector-aware attacker (lower guard success) is in reports/adaptive/.\n\n' +
    markdownTable(['pipeline', 'images x steps x restarts, paths', 'clean acc / flagged', 'eps 0.1 acc', 'eps 0.1 guard', 'eps 0.2 acc', 'eps 0.2 guard', 'eps 0.3 acc', 'eps 0.3 guard', 'report'], rows) + '\n',
);

for (const metric of ['accuracy', 'guardSuccess'] as const) {
  const series = names
    .map((p) => ({ name: p, points: [0, ...EPS].flatMap((e) => { const c = best.get(`${p}@${e}`); const y = c ? (metric === 'accuracy' ? c.accuracy : c.detector ? c.guardSuccess : null) : null; return y === null || y === undefined ? [] : [{ x: e, y }]; }) }))
    .filter((s) => s.points.length > 0);
  const chart = await lineChart({
    title: `Worst case per pipeline (white-box, detector ignored; budgets in worst-case-table.md): ${metric === 'accuracy' ? 'accuracy' : 'guard success (correct or flagged at 1% FPR)'}`,
    xTitle: 'pixel epsilon (L-inf, [0,1])',
    yTitle: metric === 'accuracy' ? 'accuracy after purification' : 'guard success',
    yDomain: [0, 1],
    width: 560,
    series,
  });
  writeChart(join(dir, `worst-case-table-${metric === 'accuracy' ? 'accuracy' : 'guard'}`), chart);
}
