/** `vqguard fit`: purifiers, calibration, evaluation, guard.yaml and a report for the user's classifier and images. */
import type { Command } from 'commander';
import { Option } from 'commander';
import { commandLine, dataSeedOption, pipelineHelp } from './options.ts';
import { fit } from '../fit/fit.ts';

const log = (line: string) => process.stderr.write(line + '\n');

export function registerFit(program: Command): void {
  program
    .command('fit')
    .requiredOption('--dataset <spec>', 'folder:<dir> (one sub-folder per class, or train/ val/ test/), idx:<dir> or mnist')
    .requiredOption('--classifier <spec>', 'the classifier to guard: <format>:<path> (tfjs, tfjs-layers, tfjs-graph, savedmodel, onnx, vqguard-bundle) or a declaration file')
    .option('--pipeline <p>', pipelineHelp('pipeline'), 'split2>full')
    .requiredOption('--out <dir>', 'model set folder to write (refused when it holds a model set, unless --force)')
    .option('--force', 'replace an existing model set in --out')
    .addOption(new Option('--budget <x>', 'minutes for the whole fit (training stages share it; epochs stop at their deadline)').default('10'))
    .option('--max-train <n>', 'use only the first n training images')
    .addOption(new Option('--seed <n>', 'training seed').default('1'))
    .addOption(dataSeedOption())
    .addOption(new Option('--batch-size <n>', 'batch size').default('64'))
    .option('--calibration-samples <n>', 'clean validation images for calibration', '1000')
    .option('--test-samples <n>', 'test images for the evaluation', '500')
    .option('--eps <list>', 'attack epsilons for the evaluation', '0.05,0.1')
    .option('--pgd-steps <n>', 'PGD steps in the evaluation', '20')
    .option('--fpr <x>', 'target false-positive rate of the guard', '0.01')
    .option('--codebook <K>', 'VQ-VAE codebook size (default 900 whole image, 300 tiles)')
    .option('--downsamples <n>', 'VQ-VAE stride-2 stages, 2..5 (default: 2 up to 64x64 tiles, then one more per doubling; 4 at 224x224)')
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const eps = String(o.eps).split(',').map((s) => Number(s.trim()));
      if (eps.some((e) => !(e > 0 && e < 1))) throw new Error(`--eps must be numbers in (0,1), got '${o.eps}'`);
      const r = await fit({
        dataset: String(o.dataset), classifier: String(o.classifier), pipeline: String(o.pipeline), out: String(o.out), force: Boolean(o.force),
        budgetMinutes: Number(o.budget), maxTrain: o.maxTrain ? Number(o.maxTrain) : undefined, seed: Number(o.seed), dataSeed: Number(o.dataSeed),
        batchSize: Number(o.batchSize), calibrationSamples: Number(o.calibrationSamples), testSamples: Number(o.testSamples), eps,
        pgdSteps: Number(o.pgdSteps), fpr: Number(o.fpr),
        codebookSize: o.codebook ? Number(o.codebook) : undefined, downsamples: o.downsamples ? Number(o.downsamples) : undefined, command: commandLine(), log,
      });
      process.stdout.write(JSON.stringify({ out: r.out, threat: r.threat, cleanAccuracy: r.cleanAccuracy, cleanAccuracyPurified: r.cleanAccuracyPurified, testFpr: r.testFpr, rows: r.rows, seconds: r.seconds }) + '\n');
      log(`fit: model set, guard.yaml and report.md in ${r.out}`);
    });
}
