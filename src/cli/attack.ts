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
import { wilson, worstCaseCell, type WorstCaseCell } from '../eval/worstCase.ts';
import { detectorAwarePgd, type GuardMode } from '../attacks/detectorAware.ts';
import { tf } from '../backend/tf.ts';
import { trainSubstitute, transferCells, type TransferCell } from '../eval/transfer.ts';
import type { Tensor4D } from '@tensorflow/tfjs-node';
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

/** The options every attack command shares: data, models, sample count, calibrations, report file. */
function attackCommand(program: Command, name: string, samples: string, report: string, reportName: string): Command {
  return program
    .command(name)
    .addOption(datasetOption())
    .addOption(dataSeedOption())
    .addOption(modelsOption())
    .addOption(samplesOption(samples))
    .option('--calibration <pipeline=file>', 'detector calibration for a pipeline (repeatable)', collectList, [])
    .option('--report <dir>', 'report folder', report)
    .option('--name <name>', 'report file name', reportName);
}

/** Dataset, the first `--samples` test images and the model set, checked to fit each other. */
function attackContext(o: Record<string, string | string[]>) {
  const models = String(o.models);
  const data = loadDataset(String(o.dataset), { seed: Number(o.dataSeed) });
  const set = take(data.test, Math.min(Number(o.samples), data.test.n));
  const reg = new ModelRegistry(models);
  checkModelsFitDataset(reg, data);
  return { models, data, set, reg, clf: reg.classifier() };
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
  attackCommand(program, 'worst-case', '100', 'reports/robustness', 'worst-case')
    .option('--eps <list>', 'pixel epsilons (0 gives the clean row)', '0,0.1,0.2,0.3')
    .option('--pipelines <list>', pipelineHelp('comma-separated pipelines; "undefended" for the bare classifier'), 'undefended,full,split2,split2>full,full>split2,adv:split2>full,bits1')
    .option('--steps <n>', 'PGD steps per restart', '100')
    .option('--restarts <n>', 'random restarts', '5')
    .option('--eot <n>', 'gradient samples per step for random pipelines (and judge draws: broken = most draws wrong)', '20')
    .option('--paths <list>', 'attack paths to run, of bpda, bpda-identity, pgd (a budget cut; the default runs all three)', 'bpda,bpda-identity,pgd')
    .option('--seed <n>', 'attack seed', '0')
    .action(async (o: Record<string, string | string[]>) => {
      const { models, data, set, reg, clf } = attackContext(o);
      const paths = parseList(String(o.paths));
      for (const q of paths) if (!['bpda', 'bpda-identity', 'pgd'].includes(q)) throw new Error(`--paths ${q}: expected bpda, bpda-identity or pgd`);
      const opts = { steps: Number(o.steps), restarts: Number(o.restarts), eot: Number(o.eot), seed: Number(o.seed), paths };
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
          title: `Worst case (${opts.paths.map((q) => ({ bpda: 'BPDA', 'bpda-identity': 'BPDA-identity', pgd: 'PGD' })[q] ?? q).join(', ')}), ${set.n} images x ${opts.steps} steps x ${opts.restarts} restarts${shown.some((c) => c.eot > 1) ? ` x EOT ${opts.eot}` : ''}: ${metric === 'accuracy' ? 'accuracy' : 'guard success (correct or flagged at 1% FPR)'}`,
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

interface AdaptiveCell {
  pipeline: string;
  detector: string;
  mode: GuardMode;
  eps: number;
  lambda: number | 'worst';
  images: number;
  steps: number;
  restarts: number;
  evaded: number;
  guardSuccess: number;
  guardCi: [number, number];
  seconds: number;
}

export function registerAdaptive(program: Command): void {
  attackCommand(program, 'adaptive', '50', 'reports/adaptive', 'detector-aware')
    .option('--eps <list>', 'pixel epsilons', '0.1,0.2,0.3')
    .option('--pipelines <list>', pipelineHelp('guarded pipelines (each needs a calibration)'), 'full,split2>full,adv:split2>full,bits1')
    .option('--lambdas <list>', 'weights of the detection score in the attack loss', '0.1,1,10')
    .option('--mode <list>', 'purified (consumer classifies the cleaned image) and/or original (forward-original: detection only)', 'purified,original')
    .option('--steps <n>', 'PGD steps per restart', '100')
    .option('--restarts <n>', 'random restarts', '1')
    .option('--seed <n>', 'attack seed', '0')
    .action(async (o: Record<string, string | string[]>) => {
      const { models, data, set, reg, clf } = attackContext(o);
      const dir = String(o.report);
      mkdirSync(dir, { recursive: true });
      const jsonPath = join(dir, `${String(o.name)}.json`);
      const cells: AdaptiveCell[] = existsSync(jsonPath) ? (JSON.parse(readFileSync(jsonPath, 'utf8')) as { cells: AdaptiveCell[] }).cells : [];
      const save = () => writeFileSync(jsonPath, JSON.stringify({ dataset: data.name, command: commandLine(), cells }, null, 1) + '\n');
      const steps = Number(o.steps), restarts = Number(o.restarts);
      const lambdas = parseList(String(o.lambdas)).map(Number);
      const modes = parseList(String(o.mode)) as GuardMode[];
      for (const m of modes) if (m !== 'purified' && m !== 'original') throw new Error(`--mode ${m}: expected purified or original`);
      const x = tf.tensor4d(set.images, [set.n, set.height, set.width, set.channels]) as Tensor4D;
      for (const spec of parseList(String(o.pipelines))) {
        const calPath = calibrationFor(models, spec, o.calibration as string[]);
        if (!calPath) throw new Error(`no calibration for ${spec}: pass --calibration '${spec}=<file>'`);
        const cal = loadCalibration(calPath);
        const det = new Detector(clf, cal.pipelines.map((q) => reg.pipeline(q)), { temperature: cal.temperature, tileGrid: cal.tileGrid }, cal);
        for (const mode of modes) {
          for (const eps of parseEps(String(o.eps))) {
            const done = (l: number | 'worst') => cells.some((c) => c.pipeline === spec && c.mode === mode && c.eps === eps && c.lambda === l && c.images === set.n && c.steps === steps && c.restarts === restarts);
            if (done('worst')) continue;
            const any = new Uint8Array(set.n);
            const t0 = Date.now();
            for (const [li, lambda] of lambdas.entries()) {
              const t1 = Date.now();
              const r = detectorAwarePgd(det, x, set.labels, { eps, steps, restarts, lambda, mode, seed: Number(o.seed) + 100 * li });
              const evaded = r.evaded.reduce((a, v) => a + v, 0);
              r.evaded.forEach((v, i) => { if (v) any[i] = 1; });
              cells.push({ pipeline: spec, detector: cal.pipelines.join('+'), mode, eps, lambda, images: set.n, steps, restarts, evaded, guardSuccess: 1 - evaded / set.n, guardCi: wilson(set.n - evaded, set.n), seconds: (Date.now() - t1) / 1000 });
              save();
            }
            const evaded = any.reduce((a, v) => a + v, 0);
            cells.push({ pipeline: spec, detector: cal.pipelines.join('+'), mode, eps, lambda: 'worst', images: set.n, steps, restarts, evaded, guardSuccess: 1 - evaded / set.n, guardCi: wilson(set.n - evaded, set.n), seconds: (Date.now() - t0) / 1000 });
            save();
            process.stderr.write(`${spec} ${mode} eps ${eps}: worst-lambda guard success ${(1 - evaded / set.n).toFixed(3)}\n`);
          }
        }
      }
      x.dispose();
      const rows = cells.map((c) => [c.pipeline, c.mode, String(c.eps), String(c.lambda), `${c.images} x ${c.steps} x ${c.restarts}`, `${c.evaded}/${c.images}`, `${f3(c.guardSuccess)} ${ci(c.guardCi)}`, Math.round(c.seconds)]);
      const md = markdownTable(['pipeline', 'mode', 'eps', 'lambda', 'images x steps x restarts', 'evaded (misclassified, not flagged)', 'guard success [95% CI]', 's'], rows);
      writeFileSync(join(dir, `${String(o.name)}.md`), `Command: \`${commandLine()}\`\n\n${md}\n`);
      const worst = cells.filter((c) => c.lambda === 'worst');
      const series = [...new Set(worst.map((c) => `${c.pipeline} (${c.mode})`))].map((name) => ({ name, points: worst.filter((c) => `${c.pipeline} (${c.mode})` === name).map((c) => ({ x: c.eps, y: c.guardSuccess })) }));
      writeChart(join(dir, `${String(o.name)}-eps`), await lineChart({ title: `Guard success under the detector-aware attack (worst over lambda), ${set.n} images x ${steps} steps x ${restarts} restart(s)`, xTitle: 'pixel epsilon (L-inf)', yTitle: 'guard success (correct or flagged, 1% FPR)', yDomain: [0, 1], width: 560, series }));
      // One chart per epsilon (a line per pipeline and mode), so no colour repeats.
      for (const e of [...new Set(cells.map((c) => c.eps))].sort()) {
        const at = cells.filter((c) => c.lambda !== 'worst' && c.eps === e);
        const names = [...new Set(at.map((c) => `${c.pipeline} (${c.mode})`))];
        const series = names.map((name) => ({ name, points: at.filter((c) => `${c.pipeline} (${c.mode})` === name).map((c) => ({ x: Math.log10(c.lambda as number), y: c.guardSuccess })) }));
        writeChart(join(dir, `${String(o.name)}-lambda-eps${e}`), await lineChart({ title: `Guard success vs lambda at eps ${e} (${set.n} images x ${steps} steps x ${restarts} restart(s))`, xTitle: 'log10 lambda (weight of the detection score in the attack loss)', yTitle: 'guard success (correct or flagged)', yDomain: [0, 1], width: 480, series }));
      }
      process.stdout.write(md + '\n');
      reg.dispose();
    });
}

export function registerTransfer(program: Command): void {
  attackCommand(program, 'transfer', '500', 'reports/adaptive', 'transfer')
    .option('--eps <list>', 'pixel epsilons', '0.1,0.2,0.3')
    .option('--pipelines <list>', pipelineHelp('comma-separated pipelines; "undefended" for the bare classifier'), 'undefended,full,split2,split2>full,full>split2,adv:split2>full,bits1')
    .option('--epochs <n>', 'substitute training epochs', '3')
    .option('--steps <n>', 'PGD steps on the substitute', '100')
    .option('--seed <n>', 'substitute training seed', '7')
    .action(async (o: Record<string, string | string[]>) => {
      const { models, data, set, reg, clf } = attackContext(o);
      const sub = await trainSubstitute(data.train, set, { epochs: Number(o.epochs), seed: Number(o.seed) });
      process.stderr.write(`substitute: ${sub.trainImages} training images (the train split, disjoint from test), ${sub.epochs} epochs, clean test accuracy ${sub.cleanAccuracy.toFixed(3)}, ${sub.seconds.toFixed(0)} s\n`);
      const targets = parseList(String(o.pipelines)).map((spec) => {
        if (spec === 'undefended') return { name: spec, pipeline: null, det: null };
        const calPath = calibrationFor(models, spec, o.calibration as string[]);
        const cal = calPath ? loadCalibration(calPath) : null;
        const det = cal ? new Detector(clf, cal.pipelines.map((q) => reg.pipeline(q)), { temperature: cal.temperature, tileGrid: cal.tileGrid }, cal) : null;
        return { name: spec, pipeline: reg.pipeline(spec), det };
      });
      const cells: TransferCell[] = [];
      for (const attack of ['fgsm', 'pgd'] as const) {
        for (const eps of [0, ...parseEps(String(o.eps))]) {
          if (attack === 'pgd' && eps === 0) continue;
          cells.push(...transferCells(clf, sub, targets, set, attack, eps, Number(o.steps)));
          process.stderr.write(`${attack} eps ${eps} done\n`);
        }
      }
      const dir = String(o.report);
      mkdirSync(dir, { recursive: true });
      const substitute = { architecture: 'conv5x5(16,tanh)-pool-conv5x5(32,tanh)-pool-dense100(tanh)-dense10', trainImages: sub.trainImages, epochs: sub.epochs, cleanAccuracy: sub.cleanAccuracy, seconds: sub.seconds };
      writeFileSync(join(dir, `${String(o.name)}.json`), JSON.stringify({ dataset: data.name, command: commandLine(), substitute, cells }, null, 1) + '\n');
      const rows = cells.map((c) => [c.attack === 'pgd' ? `PGD-${String(o.steps)}` : 'FGSM', String(c.eps), c.pipeline, `${c.images}`, f3(c.substituteAccuracy), `${f3(c.accuracy)} ${ci(c.accuracyCi)}`, c.detector ? f3(c.detectionRate) : 'no detector', c.flaggedAll === null ? '' : f3(c.flaggedAll), `${f3(c.guardSuccess)} ${ci(c.guardCi)}`]);
      const md = markdownTable(['attack (on substitute)', 'eps', 'pipeline', 'images', 'substitute acc.', 'accuracy [95% CI]', 'detected (of misclassified)', 'flagged (all)', 'guard success [95% CI]'], rows);
      writeFileSync(join(dir, `${String(o.name)}.md`), `Command: \`${commandLine()}\`\n\nSubstitute: ${substitute.architecture}, trained on the ${sub.trainImages}-image train split (disjoint from the test split), ${sub.epochs} epochs, clean test accuracy ${f3(sub.cleanAccuracy)}.\n\n${md}\n`);
      const order = parseList(String(o.pipelines));
      for (const attack of ['fgsm', 'pgd'] as const) {
        const series = order.map((name) => ({ name, points: cells.filter((c) => c.pipeline === name && (c.attack === attack || c.eps === 0)).map((c) => ({ x: c.eps, y: c.guardSuccess })) }));
        writeChart(join(dir, `${String(o.name)}-${attack}`), await lineChart({ title: `Transfer ${attack === 'pgd' ? `PGD-${String(o.steps)}` : 'FGSM'} from a substitute: guard success (correct or flagged at 1% FPR), ${set.n} images`, xTitle: 'pixel epsilon (L-inf)', yTitle: 'guard success', yDomain: [0, 1], width: 560, series }));
      }
      process.stdout.write(md + '\n');
      sub.dispose();
      reg.dispose();
    });
}
