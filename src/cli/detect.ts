/** `vqguard calibrate` and `vqguard detect-eval`. */
import type { Command } from 'commander';
import { commandLine, dataSeedOption, datasetOption, jsonOption, modelsOption, pipelineHelp, samplesOption } from './options.ts';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadDatasetAsync } from '../data/load.ts';
import { take } from '../data/dataset.ts';
import { ModelRegistry, checkModelsFitDataset } from '../models/registry.ts';
import { Detector } from '../detect/detector.ts';
import { calibrate, defaultCalibrationPath, loadCalibration, saveCalibration } from '../detect/calibration.ts';
import { calibrationScores } from '../eval/calibrationRun.ts';
import { evaluateDetection } from '../eval/detection.ts';
import type { AttackName } from '../attacks/attacks.ts';
import { parseEps, parseList } from './eval.ts';
import { formatTable, markdownTable } from '../report/table.ts';
import { rocChart, writeChart } from '../report/plot.ts';
import { epochBar } from '../train/progress.ts';

const collectList = (v: string, prev: string[] = []) => [...prev, ...parseList(v)];

export function registerDetect(program: Command): void {
  program
    .command('calibrate')
    .addOption(datasetOption())
    .addOption(dataSeedOption())
    .addOption(modelsOption())
    .option('--pipeline <p>', pipelineHelp('pipeline (repeat or comma-separate for several)'), collectList, [])
    .option('--fpr <x>', 'target false-positive rate', '0.01')
    .option('--temperature <x>', 'softmax temperature of the JS score', '10')
    .option('--samples <n>', 'clean validation images to use', '1000')
    .option('--out <file>', 'calibration file (default <models>/calibration/<pipelines>.json)')
    .option('--force', 'replace an existing calibration file (the model sets ship theirs)')
    .action(async (o: Record<string, string | string[] | boolean>) => {
      const pipelines = (o.pipeline as string[]).length ? (o.pipeline as string[]) : ['split2>full'];
      const models = String(o.models);
      const out = String(o.out ?? defaultCalibrationPath(models, pipelines));
      if (existsSync(out) && !o.force) throw new Error(`${out} already exists: pass --force to replace it, or --out <another file>`);
      const data = await loadDatasetAsync(String(o.dataset), { seed: Number(o.dataSeed) });
      const set = take(data.validation, Math.min(Number(o.samples), data.validation.n));
      const reg = new ModelRegistry(models);
      await reg.prepare();
      checkModelsFitDataset(reg, data);
      const det = new Detector(reg.scoring(), pipelines.map((p) => reg.pipeline(p)), { temperature: Number(o.temperature) });
      const attackModel = reg.attackModel();
      process.stderr.write(`calibration attacks: ${attackModel.describe}\n`);
      const bar = epochBar('calibrate', set.n);
      const { clean, attacked } = await calibrationScores(det, set, 100, attackModel.logits, (d) => bar.update(d, {}));
      bar.stop();
      const fpr = Number(o.fpr);
      const fprs = [...new Set([fpr, 0.01, 0.05])];
      const versions: Record<string, string> = {};
      for (const p of pipelines) Object.assign(versions, reg.versions(p));
      const cal = calibrate(clean, attacked, det.scoreKeys(), fprs, {
        pipelines, temperature: Number(o.temperature), tileGrid: det.tileGrid, dataset: `${data.name} validation (${set.n})`,
        modelVersions: versions, command: commandLine(),
      });
      saveCalibration(out, cal);
      process.stdout.write(formatTable(['score', `threshold @ fpr ${fpr}`], Object.entries(cal.thresholds).map(([k, v]) => [k, v])) + `\nwritten to ${out}\n`);
      reg.dispose();
    });

  program
    .command('detect-eval')
    .addOption(datasetOption())
    .addOption(dataSeedOption())
    .addOption(modelsOption())
    .option('--pipeline <p>', pipelineHelp('pipeline (repeat or comma-separate for several)'), collectList, [])
    .option('--calibration <file>', 'calibration file (default <models>/calibration/<pipelines>.json)')
    .option('--attack <name>', 'fgsm | pgd', 'fgsm')
    .option('--steps <n>', 'PGD steps', '40')
    .option('--eps <list>', 'pixel epsilons', '0.05,0.1,0.3')
    .addOption(samplesOption())
    .option('--report <dir>', 'also write JSON, Markdown and ROC plots here')
    .addOption(jsonOption())
    .action(async (o: Record<string, string | string[] | boolean>) => {
      const attack = String(o.attack) as AttackName;
      if (attack !== 'fgsm' && attack !== 'pgd') throw new Error(`detect-eval attacks: fgsm or pgd, got "${attack}"`);
      const pipelines = (o.pipeline as string[]).length ? (o.pipeline as string[]) : ['split2>full'];
      const models = String(o.models);
      const cal = loadCalibration(String(o.calibration ?? defaultCalibrationPath(models, pipelines)));
      const data = await loadDatasetAsync(String(o.dataset), { seed: Number(o.dataSeed) });
      const set = take(data.test, Math.min(Number(o.samples), data.test.n));
      const reg = new ModelRegistry(models);
      await reg.prepare();
      checkModelsFitDataset(reg, data);
      const det = new Detector(reg.scoring(), pipelines.map((p) => reg.pipeline(p)), { temperature: cal.temperature, tileGrid: cal.tileGrid }, cal);
      const attackModel = reg.attackModel();
      const epsList = parseEps(String(o.eps));
      const bar = epochBar('detect-eval', set.n * (1 + epsList.length), process.stderr.isTTY === true && !o.json);
      const r = await evaluateDetection(det, set, { name: attack, steps: Number(o.steps), seed: 0 }, epsList, 200, attackModel.logits, (d) => bar.update(d, {}));
      bar.stop();
      const result = { dataset: data.name, samples: set.n, pipelines, threat: attackModel.describe, calibration: { fpr: cal.fpr, dataset: cal.dataset }, command: commandLine(), rows: r.rows };
      if (o.report) {
        const dir = String(o.report);
        mkdirSync(dir, { recursive: true });
        const tag = `${attack}`;
        writeFileSync(join(dir, `${tag}.json`), JSON.stringify({ ...result, curves: r.curves }, null, 1) + '\n');
        const head = ['eps', 'score', 'positives', 'n+', 'AUC', 'TPR@1%', 'TPR@5%', 'FPR@1% (test)'];
        const md = markdownTable(head, r.rows.map((x) => [x.eps, x.score, x.positives, x.nPositives, x.auc, x.tprAtFpr01, x.tprAtFpr05, x.fpr]));
        writeFileSync(join(dir, `${tag}.md`), `# Detection: ${pipelines.join(' + ')} vs ${attack}\n\nCommand: \`${result.command}\`\n\n${md}\n`);
        for (const eps of new Set(r.curves.map((c) => c.eps))) {
          const curves = r.curves.filter((c) => c.eps === eps && ['combined', 'recon', 'l1', 'js', `${pipelines[0]}:recon`, `${pipelines[0]}:l1`].includes(c.score));
          writeChart(join(dir, `roc-${tag}-eps${eps}`), await rocChart(curves.map((c) => ({ name: c.score, points: c.points, auc: c.auc })), { title: `ROC, ${attack} eps ${eps} (successful attacks)` }));
        }
      }
      if (o.json) process.stdout.write(JSON.stringify(result) + '\n');
      else process.stdout.write(formatTable(['eps', 'score', 'positives', 'AUC', 'TPR@1%', 'TPR@5%', 'FPR'], r.rows.map((x) => [x.eps, x.score, x.positives, x.auc, x.tprAtFpr01, x.tprAtFpr05, x.fpr])) + '\n');
      reg.dispose();
    });
}
