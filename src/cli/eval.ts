/** `vqguard eval`: accuracy under attack for the undefended classifier and purification pipelines. */
import type { Command } from 'commander';
import { commandLine, dataSeedOption, datasetOption, jsonOption, modelsOption, pipelineHelp, samplesOption } from './options.ts';
import { loadDatasetAsync } from '../data/load.ts';
import { take } from '../data/dataset.ts';
import { ModelRegistry, checkModelsFitDataset } from '../models/registry.ts';
import { evaluateRobustness, evaluateRobustnessWith } from '../eval/robustness.ts';
import type { AttackName } from '../attacks/attacks.ts';
import { formatTable } from '../report/table.ts';
import { writeRobustnessReport } from '../eval/report.ts';

export function parseList(s: string): string[] {
  return s.split(',').map((x) => x.trim()).filter(Boolean);
}

export function parseEps(s: string): number[] {
  return parseList(s).map((x) => {
    const v = Number(x);
    if (!Number.isFinite(v) || v < 0 || v > 1) throw new Error(`bad epsilon "${x}": expected a number in [0, 1]`);
    return v;
  });
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .addOption(datasetOption())
    .addOption(dataSeedOption())
    .addOption(modelsOption())
    .addOption(samplesOption())
    .option('--eps <list>', 'pixel epsilons', '0,0.1,0.3')
    .option('--pipelines <list>', pipelineHelp('comma-separated pipelines'), 'full,split2,split2>full,full>split2')
    .option('--attack <name>', 'fgsm | pgd | bpda', 'fgsm')
    .option('--steps <n>', 'PGD/BPDA steps', '40')
    .option('--seed <n>', 'attack seed (PGD random start)', '0')
    .option('--report <dir>', 'also write <dir>/<name>.json, .md and .png (plot)')
    .option('--name <name>', 'report file name (default: the attack)')
    .option('--title <text>', 'plot title')
    .option('--paper-axis', "label epsilon also in the source paper's units (pixel epsilon x 10) in the report")
    .addOption(jsonOption())
    .option('--allow-dataset-mismatch', 'evaluate models trained on another dataset (same image shape)')
    .action(async (o: Record<string, string | boolean>) => {
      const attack = String(o.attack) as AttackName;
      if (!['fgsm', 'pgd', 'bpda'].includes(attack)) throw new Error(`unknown attack "${attack}": expected fgsm, pgd or bpda`);
      const data = await loadDatasetAsync(String(o.dataset), { seed: Number(o.dataSeed) });
      const set = take(data.test, Math.min(Number(o.samples), data.test.n));
      const reg = new ModelRegistry(String(o.models));
      checkModelsFitDataset(reg, data, Boolean(o.allowDatasetMismatch));
      const pipelines = parseList(String(o.pipelines)).map((p) => reg.pipeline(p));
      const t0 = Date.now();
      const robustness = {
        attack: { name: attack, steps: Number(o.steps), seed: Number(o.seed) },
        eps: parseEps(String(o.eps)),
        onProgress: o.json ? undefined : (d: number, t: number) => process.stderr.write(`\r${d}/${t} batches`),
      };
      // A model set from `vqguard fit` may guard an external classifier (TF.js, SavedModel, ONNX):
      // attacks then come from reg.attackModel() (white-box when it has gradients, else the
      // surrogate: a transfer attack) and accuracy is the external classifier's.
      let threat = "white-box on the classifier alone (purifier-oblivious: the purifier is not in the attack's gradient)";
      let rows;
      if (reg.externalDeclaration) {
        await reg.prepare();
        const am = reg.attackModel();
        const scoring = reg.scoring();
        threat = attack === 'bpda' && am.kind === 'transfer' ? `BPDA through each pipeline into the surrogate: ${am.describe}` : am.describe;
        if (!o.json) process.stderr.write(`classifier ${scoring.source}; attack: ${threat}\n`);
        rows = await evaluateRobustnessWith(am.logits, (x) => scoring.logitsAsync(x), pipelines, set, robustness);
      } else {
        if (attack === 'bpda') threat = 'BPDA (white-box through purifier and classifier, straight-through at non-differentiable stages)';
        rows = evaluateRobustness(reg.classifier(), pipelines, set, robustness);
      }
      const result = { dataset: data.name, samples: set.n, attack, threat, classifier: reg.scoring().source, command: commandLine(), seconds: (Date.now() - t0) / 1000, rows };
      if (o.report) {
        await writeRobustnessReport(String(o.report), String(o.name ?? attack), result, String(o.title ?? `Accuracy under ${attack.toUpperCase()} (${data.name}, ${set.n} images)`), { paperAxis: Boolean(o.paperAxis) });
      }
      if (o.json) process.stdout.write(JSON.stringify(result) + '\n');
      else process.stdout.write('\n' + formatTable(['pipeline', 'attack', 'eps', 'accuracy'], rows.map((r) => [r.pipeline, r.attack, r.eps, r.accuracy])) + '\n');
      reg.dispose();
    });
}
