/** `vqguard sweep` (codebook sizes) and `vqguard examples` (image grid). */
import type { Command } from 'commander';
import { commandLine, datasetOption, modelsOption, pipelineHelp, samplesOption } from './options.ts';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { tf } from '../backend/tf.ts';
import type { Tensor1D } from '@tensorflow/tfjs-node';
import { loadDataset } from '../data/load.ts';
import { take } from '../data/dataset.ts';
import { ModelRegistry, checkModelsFitDataset } from '../models/registry.ts';
import { runSweep, readSweep } from '../eval/sweep.ts';
import { runAttack, type AttackName } from '../attacks/attacks.ts';
import { batchTensor } from '../train/evaluate.ts';
import { imageGrid } from '../report/imageGrid.ts';
import { heatmap, lineChart, writeChart } from '../report/plot.ts';
import { markdownTable } from '../report/table.ts';
import { paperHeader } from '../eval/report.ts';
import { parseEps, parseList } from './eval.ts';

export function registerResearch(program: Command): void {
  program
    .command('sweep')
    .addOption(datasetOption())
    .addOption(modelsOption())
    .option('--split <k>', '1 = whole image, 2 = 4-Split tiles', '1')
    .option('--k <list>', 'codebook sizes', '100,200,300,400,500,600,700,800,900,1000')
    .option('--epochs <n>', 'training epochs per K', '3')
    .option('--seed <n>', 'training seed', '1')
    .option('--eps <list>', 'FGSM pixel epsilons', '0,0.05,0.1,0.2,0.3')
    .addOption(samplesOption())
    .option('--work <dir>', 'where trained sweep bundles are kept (not committed)', '.cache/sweep')
    .option('--report <dir>', 'report folder', 'reports/paper')
    .option('--paper-axis', "label epsilon also in the source paper's units (pixel epsilon x 10)")
    .action(async (o: Record<string, string>) => {
      const split = Number(o.split);
      const paper = Boolean(o.paperAxis);
      const epsLabel = (x: string) => (paper ? `${x} (${(Number(x) * 10).toFixed(1)})` : x);
      const data = loadDataset(o.dataset!);
      const set = take(data.test, Math.min(Number(o.samples), data.test.n));
      const reg = new ModelRegistry(o.models!);
      checkModelsFitDataset(reg, data);
      mkdirSync(o.report!, { recursive: true });
      const resultsFile = join(o.report!, `sweep-split${split}.json`);
      const entries = runSweep(data, set, reg.classifier(), {
        split, ks: parseList(o.k!).map(Number), epochs: Number(o.epochs), seed: Number(o.seed), eps: parseEps(o.eps!),
        workDir: join(o.work!, data.name), resultsFile, command: commandLine(),
        classifierSha: reg.classifierManifest().weightsSha256.slice(0, 12), log: (l) => process.stderr.write(l + '\n'),
      });
      const eps = Object.keys(entries[0]?.accuracy ?? {});
      const title = `Codebook sweep, ${split === 1 ? 'No-Split (whole image)' : `${split * split}-Split (tiles)`}: accuracy under FGSM`;
      writeFileSync(
        join(o.report!, `sweep-split${split}.md`),
        `# ${title}\n\n${set.n} test images; ${o.epochs} epochs per K. Command: \`${commandLine()}\`\n\n` +
          (paper ? "Epsilon: pixel L-infinity; in brackets the paper's axis label (pixel epsilon x 10).\n\n" : '') +
          markdownTable(['K', ...eps.map((e) => (paper ? paperHeader(`eps ${e}`) : `eps ${e}`)), 'test MSE', 'perplexity', 'train s'], entries.map((e) => [e.k, ...eps.map((x) => e.accuracy[x]!), e.testMse, e.perplexity, e.trainSeconds])) + '\n',
      );
      writeChart(join(o.report!, `sweep-split${split}-heatmap`), await heatmap({
        title, xTitle: paper ? "epsilon (pixel; in brackets the paper's label, x 10)" : 'epsilon', yTitle: 'codebook size K',
        cells: entries.flatMap((e) => eps.map((x) => ({ x: epsLabel(x), y: String(e.k), value: e.accuracy[x]! }))),
      }));
      writeChart(join(o.report!, `sweep-split${split}-lines`), await lineChart({
        title, xTitle: 'codebook size K', yTitle: 'accuracy', yDomain: [0, 1],
        series: eps.map((x) => ({ name: `eps ${epsLabel(x)}`, points: entries.map((e) => ({ x: e.k, y: e.accuracy[x]! })) })),
      }));
      process.stderr.write(`sweep results: ${resultsFile} (${readSweep(resultsFile).length} entries)\n`);
      reg.dispose();
    });

  program
    .command('examples')
    .addOption(datasetOption())
    .addOption(modelsOption())
    .option('--pipelines <list>', pipelineHelp('comma-separated pipelines'), 'full,split2,split2>full,full>split2,adv:full')
    .option('--eps <list>', 'epsilons', '0.1,0.2,0.3')
    .option('--attack <name>', 'fgsm | pgd', 'fgsm')
    .option('--images <n>', 'images per epsilon', '2')
    .option('--out <file>', 'PNG file', 'reports/paper/examples.png')
    .action(async (o: Record<string, string>) => {
      const data = loadDataset(o.dataset!);
      const reg = new ModelRegistry(o.models!);
      checkModelsFitDataset(reg, data);
      const pipes = parseList(o.pipelines!).map((p) => reg.pipeline(p));
      const n = Number(o.images);
      const set = take(data.test, n);
      const clf = reg.classifier();
      const rows: { label: string; images: Float32Array[] }[] = [];
      const x = batchTensor(set, 0, n);
      const y = tf.tensor1d(set.labels.subarray(0, n), 'int32') as Tensor1D;
      for (const eps of parseEps(o.eps!)) {
        const adv = runAttack({ name: o.attack as AttackName, steps: 40 }, (xi) => clf.logits(xi), x, y, eps);
        const outs = pipes.map((p) => p.apply(adv));
        const preds = [clf.predict(x), clf.predict(adv), ...outs.map((t) => clf.predict(t))].map((t) => Array.from(t.dataSync()));
        const size = set.height * set.width * set.channels;
        for (let i = 0; i < n; i++) {
          const pick = (t: { dataSync(): ArrayLike<number> }) => Float32Array.from(Array.from(t.dataSync()).slice(i * size, (i + 1) * size));
          rows.push({
            label: `eps ${eps} #${i} (${preds.map((p) => p[i]).join('/')})`,
            images: [pick(x), pick(adv), ...outs.map(pick)],
          });
        }
        tf.dispose([adv, ...outs]);
      }
      const png = await imageGrid(rows, {
        height: set.height, width: set.width, channels: set.channels, scale: 3,
        columnLabels: ['clean', o.attack!, ...pipes.map((p) => p.name)],
      });
      mkdirSync(dirname(o.out!), { recursive: true });
      writeFileSync(o.out!, png);
      writeFileSync(o.out!.replace(/\.png$/, '.command.txt'), commandLine() + '\n(row labels: predicted class for clean/adversarial/each pipeline)\n');
      process.stderr.write(`written ${o.out}\n`);
      reg.dispose();
    });
}
