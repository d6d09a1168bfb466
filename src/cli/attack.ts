/**
 * `vqguard worst-case`: per pipeline and epsilon, the worst over BPDA (stages' backward), BPDA
 * (purifier as identity) and PGD (classifier only), N steps x R restarts, success at any step;
 * accuracy, detection rate at the calibrated 1% FPR and guard success, with 95% CIs. Results
 * are appended cell by cell to <report>/<name>.json, so an interrupted run resumes.
 */
import type { Command } from 'commander';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { commandLine, dataSeedOption, datasetOption, modelsOption, pipelineHelp, samplesOption } from './options.ts';
import { loadDataset } from '../data/load.ts';
import { take } from '../data/dataset.ts';
import { ModelRegistry, checkModelsFitDataset } from '../models/registry.ts';
import { Detector } from '../detect/detector.ts';
import { defaultCalibrationPath, loadCalibration } from '../detect/calibration.ts';
import { worstCaseCell, type WorstCaseCell } from '../eval/worstCase.ts';
import { parseEps, parseList } from './eval.ts';
import { markdownTable } from '../report/table.ts';
import { lineChart, writeChart } from '../report/plot.ts';

const collectList = (v: string, prev: string[] = []) => [...prev, ...parseList(v)];

/** `pipeline=file` pairs; pipelines without one use <models>/calibration/<pipeline>.json if it exists. */
export function calibrationFor(models: string, pipeline: string, pairs: string[]): string | null {
  for (const p of pairs) {
    const i = p.lastIndexOf('=');
    if (i < 0) throw new Error(`--calibration "${p}": expected pipeline=file`);
    if (p.slice(0, i) === pipeline) return p.slice(i + 1);
  }
  const d = defaultCalibrationPath(models, [pipeline]);
  return existsSync(d) ? d : null;
}

const f3 = (v: number | null) => (v === null ? 'n/a' : v.toFixed(3).replace(/^0/, ''));
const ci = (c: [number, number] | null) => (c ? `[${f3(c[0])}, ${f3(c[1])}]` : '');

export function worstCaseMarkdown(cells: WorstCaseCell[]): string {
  const rows = cells.map((c) => [
    c.pipeline, String(c.eps), `${c.images} x ${c.steps} x ${c.restarts}${c.eot > 1 ? ` x EOT ${c.eot}` : ''}`,
    `${f3(c.accuracy)} ${ci(c.accuracyCi)}`,
    c.detector ? `${f3(c.detectionRate)} (${c.flaggedBroken}/${c.broken})` : 'no detector',
    `${f3(c.guardSuccess)} ${ci(c.guardCi)}`,
    Object.entries(c.brokenBy).map(([k, v]) => `${k} ${v}`).join(', '),
    Math.round(c.seconds),
  ]);
  return markdownTable(['pipeline', 'eps', 'images x steps x restarts', 'accuracy [95% CI]', 'detected (of broken)', 'guard success [95% CI]', 'broken first by', 's'], rows);
}

export function registerAttack(program: Command): void {
  program
    .command('worst-case')
    .addOption(datasetOption())
    .addOption(dataSeedOption())
    .addOption(modelsOption())
    .addOption(samplesOption('100'))
    .option('--eps <list>', 'pixel epsilons (0 gives the clean row)', '0,0.1,0.2,0.3')
    .option('--pipelines <list>', pipelineHelp('comma-separated pipelines; "undefended" for the bare classifier'), 'undefended,full,split2,split2>full,full>split2,adv:split2>full,bits1')
    .option('--steps <n>', 'PGD steps per restart', '100')
    .option('--restarts <n>', 'random restarts', '5')
    .option('--eot <n>', 'gradient samples per step for random pipelines', '20')
    .option('--seed <n>', 'attack seed', '0')
    .option('--calibration <pipeline=file>', 'detector calibration for a pipeline (repeatable)', collectList, [])
    .option('--report <dir>', 'report folder', 'reports/robustness')
    .option('--name <name>', 'report file name', 'worst-case')
    .action(async (o: Record<string, string | string[]>) => {
      const models = String(o.models);
      const data = loadDataset(String(o.dataset), { seed: Number(o.dataSeed) });
      const set = take(data.test, Math.min(Number(o.samples), data.test.n));
      const reg = new ModelRegistry(models);
      checkModelsFitDataset(reg, data);
      const clf = reg.classifier();
      const opts = { steps: Number(o.steps), restarts: Number(o.restarts), eot: Number(o.eot), seed: Number(o.seed) };
      const dir = String(o.report);
      mkdirSync(dir, { recursive: true });
      const jsonPath = join(dir, `${String(o.name)}.json`);
      const prev = existsSync(jsonPath) ? (JSON.parse(readFileSync(jsonPath, 'utf8')) as { cells: WorstCaseCell[] }).cells : [];
      const same = (c: WorstCaseCell, p: string, eps: number) => c.pipeline === p && c.eps === eps && c.images === set.n && c.steps === opts.steps && c.restarts === opts.restarts;
      const cells: WorstCaseCell[] = [...prev];
      const save = () => writeFileSync(jsonPath, JSON.stringify({ dataset: data.name, command: commandLine(), cells }, null, 1) + '\n');
      const eps = parseEps(String(o.eps));
      for (const e of eps) {
        for (const spec of parseList(String(o.pipelines))) {
          if (cells.some((c) => same(c, spec, e))) continue;
          const p = spec === 'undefended' ? null : reg.pipeline(spec);
          let det: Detector | null = null;
          if (p) {
            const calPath = calibrationFor(models, spec, o.calibration as string[]);
            if (calPath) {
              const cal = loadCalibration(calPath);
              if (cal.pipelines[0] !== spec) throw new Error(`calibration ${calPath} is for ${cal.pipelines.join('+')}, not ${spec}`);
              det = new Detector(clf, cal.pipelines.map((q) => reg.pipeline(q)), { temperature: cal.temperature, tileGrid: cal.tileGrid }, cal);
            }
          }
          const cell = worstCaseCell(clf, p, det, set, e, opts);
          cells.push(cell);
          save();
          process.stderr.write(`${spec} eps ${e}: accuracy ${cell.accuracy.toFixed(3)}, guard ${cell.guardSuccess?.toFixed(3)}, ${cell.seconds.toFixed(0)} s\n`);
        }
      }
      save();
      const order = parseList(String(o.pipelines));
      const shown = cells.filter((c) => order.includes(c.pipeline) && eps.includes(c.eps)).sort((a, b) => order.indexOf(a.pipeline) - order.indexOf(b.pipeline) || a.eps - b.eps);
      writeFileSync(join(dir, `${String(o.name)}.md`), `Command: \`${commandLine()}\`\n\n${worstCaseMarkdown(shown)}\n`);
      for (const metric of ['accuracy', 'guardSuccess'] as const) {
        const chart = await lineChart({
          title: `Worst case (BPDA, BPDA-identity, PGD), ${set.n} images x ${opts.steps} steps x ${opts.restarts} restarts: ${metric === 'accuracy' ? 'accuracy' : 'guard success (correct or flagged at 1% FPR)'}`,
          xTitle: 'pixel epsilon (L-inf, [0,1])',
          yTitle: metric === 'accuracy' ? 'accuracy after purification' : 'guard success',
          yDomain: [0, 1],
          width: 560,
          series: order.map((name) => ({ name, points: shown.filter((c) => c.pipeline === name).map((c) => ({ x: c.eps, y: c[metric] ?? NaN })) })),
        });
        writeChart(join(dir, `${String(o.name)}-${metric === 'accuracy' ? 'accuracy' : 'guard'}`), chart);
      }
      process.stdout.write(worstCaseMarkdown(shown) + '\n');
      reg.dispose();
    });
}
