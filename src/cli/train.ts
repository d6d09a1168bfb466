/** `vqguard train classifier|purifier`: trains and writes a model bundle. */
import type { Command } from 'commander';
import { addTrainingOptions, commandLine } from './options.ts';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { loadDataset } from '../data/load.ts';
import { limitTrain } from '../data/dataset.ts';
import { saveBundle, loadBundle } from '../models/bundle.ts';
import type { Classifier } from '../detect/classifier.ts';
import { trainClassifier } from '../train/trainClassifier.ts';
import { trainPurifier } from '../train/trainPurifier.ts';
import { backendInfo } from '../backend/tf.ts';
import { canonicalDataset, purifierDirName } from '../models/registry.ts';
import { trainGenerator } from '../baselines/trainGenerator.ts';

const log = (line: string) => process.stderr.write(line + '\n');

/** A bundle folder that already holds a model is never written over without --force (models/ ships trained ones). */
function checkOut(out: string, force: unknown): void {
  if (existsSync(join(out, 'model.json')) && !force) {
    throw new Error(`${out} already holds a model bundle: pass --force to replace it, or --out <another folder>`);
  }
}

function datasetMeta(data: ReturnType<typeof loadDataset>, seed: number) {
  return { name: data.name, trainSize: data.train.n, validationSize: data.validation.n, testSize: data.test.n, seed };
}

export function registerTrain(program: Command): void {
  const train = program.command('train');
  addTrainingOptions(train.command('classifier').description('the classifier the detector and the evaluations use'), { epochs: '20' })
    .option('--shift <n>', 'max random shift in pixels (augmentation)', '2')
    .option('--dropout <x>', 'dropout before the last layer', '0.3')
    .option('--lr-schedule <s>', 'cosine (decay to 0 over the epochs) or constant', 'cosine')
    .option('--max-train <n>', 'use only the first n training images')
    .option('--adversarial-eps <x>', 'adversarial training: FGSM with random start at this epsilon (0 = off)', '0')
    .option('--out <dir>', 'bundle folder', 'models/mnist/classifier')
    .option('--force', 'replace an existing bundle in --out')
    .action((o: Record<string, string>) => {
      checkOut(o.out!, o.force);
      const seed = Number(o.seed);
      if (o.lrSchedule !== 'cosine' && o.lrSchedule !== 'constant') throw new Error(`--lr-schedule must be cosine or constant, got '${o.lrSchedule}'`);
      const data = limitTrain(loadDataset(o.dataset!, { seed: Number(o.dataSeed) }), o.maxTrain ? Number(o.maxTrain) : undefined);
      const r = trainClassifier(data, {
        seed, epochs: Number(o.epochs), batchSize: Number(o.batchSize), learningRate: Number(o.lr),
        maxShift: Number(o.shift), dropout: Number(o.dropout), lrSchedule: o.lrSchedule, adversarialEps: Number(o.adversarialEps), log,
      });
      saveBundle(o.out!, r.model, {
        name: 'classifier',
        dataset: datasetMeta(data, Number(o.dataSeed)),
        training: { command: commandLine(), seed, epochs: r.metrics.epochsRun, batchSize: Number(o.batchSize), learningRate: Number(o.lr), adversarial: Number(o.adversarialEps) > 0 ? { attacks: ['fgsm-random-start'], maxEps: Number(o.adversarialEps), fraction: 1 } : null, trainSeconds: r.seconds, backend: backendInfo.packageName },
        metrics: { ...r.metrics },
      });
      log(`classifier: test accuracy ${r.metrics.testAccuracy.toFixed(4)} (best epoch ${r.metrics.bestEpoch}), ${r.seconds.toFixed(1)} s -> ${o.out}`);
    });
  addTrainingOptions(train.command('purifier').description('a VQ-VAE purifier, whole image or k x k tiles'), { epochs: '15', batchHelp: 'batch size (images; tiles are k*k times more)' })
    .option('--split <k>', 'train on the tiles of a k x k split (1 = whole image)', '1')
    .option('--codebook <K>', 'codebook size (default 900 whole, 300 tiles)')
    .option('--downsamples <n>', 'stride-2 stages, 2..5 (default: 2 up to 64x64 tiles, then one more per doubling; 4 at 224x224)')
    .option('--adversarial-training', 'Defense-VAE style: attacked inputs (FGSM/PGD, random eps), clean targets')
    .option('--classifier <dir>', 'classifier bundle for adversarial training', 'models/mnist/classifier')
    .option('--adv-fraction <x>', 'share of each batch attacked', '0.5')
    .option('--adv-max-eps <x>', 'largest attack epsilon', '0.3')
    .option('--adv-pgd-steps <n>', 'PGD steps for adversarial batches', '10')
    .option('--max-train <n>', 'use only the first n training images')
    .option('--out <dir>', 'bundle folder (default models/mnist/purifier-split<k>[-adv])')
    .option('--force', 'replace an existing bundle in --out')
    .action((o: Record<string, string | boolean | undefined>) => {
      const seed = Number(o.seed);
      const split = Number(o.split);
      const adv = Boolean(o.adversarialTraining);
      checkOut(String(o.out ?? join('models', 'mnist', purifierDirName(split, adv ? 'adv' : 'clean'))), o.force);
      const data = limitTrain(loadDataset(String(o.dataset), { seed: Number(o.dataSeed) }), o.maxTrain ? Number(o.maxTrain) : undefined);
      const clfBundle = adv ? loadBundle<Classifier>(String(o.classifier)) : undefined;
      if (clfBundle && canonicalDataset(clfBundle.manifest.dataset.name) !== canonicalDataset(data.name)) {
        throw new Error(`--classifier ${o.classifier} was trained on '${clfBundle.manifest.dataset.name}', not on --dataset '${data.name}': pass the classifier of that dataset`);
      }
      const classifier = clfBundle?.model;
      const advOpts = classifier
        ? { classifier, fraction: Number(o.advFraction), maxEps: Number(o.advMaxEps), pgdSteps: Number(o.advPgdSteps) }
        : undefined;
      const r = trainPurifier(data, {
        seed, split, epochs: Number(o.epochs), batchSize: Number(o.batchSize), learningRate: Number(o.lr),
        codebookSize: o.codebook ? Number(o.codebook) : undefined, downsamples: o.downsamples ? Number(o.downsamples) : undefined, adversarial: advOpts,
        log,
      });
      const out = String(o.out ?? join('models', 'mnist', purifierDirName(split, adv ? 'adv' : 'clean')));
      saveBundle(out, r.model, {
        name: purifierDirName(split, adv ? 'adv' : 'clean'),
        dataset: datasetMeta(data, Number(o.dataSeed)),
        training: {
          command: commandLine(), seed, epochs: r.history.length, batchSize: Number(o.batchSize), learningRate: Number(o.lr),
          adversarial: advOpts ? { attacks: ['fgsm', `pgd-${advOpts.pgdSteps}`], maxEps: advOpts.maxEps, fraction: advOpts.fraction } : null,
          trainSeconds: r.seconds, backend: backendInfo.packageName,
        },
        metrics: { ...r.metrics },
      });
      log(`purifier split${split}${adv ? ' (adversarial)' : ''}: test MSE ${r.metrics.testMse.toFixed(5)}, perplexity ${r.metrics.perplexity.toFixed(1)}, codes used ${r.metrics.codesUsed}, ${r.seconds.toFixed(1)} s -> ${out}`);
    });
  addTrainingOptions(train.command('generator').description('the Defense-GAN-style baseline generator (a VAE decoder)'), { epochs: '10' })
    .option('--latent <n>', 'latent dimension', '32')
    .option('--out <dir>', 'bundle folder', 'models/mnist/generator')
    .option('--force', 'replace an existing bundle in --out')
    .action((o: Record<string, string>) => {
      checkOut(o.out!, o.force);
      const data = loadDataset(o.dataset!, { seed: Number(o.dataSeed) });
      const r = trainGenerator(data, { seed: Number(o.seed), epochs: Number(o.epochs), batchSize: Number(o.batchSize), learningRate: Number(o.lr), latent: Number(o.latent), log });
      saveBundle(o.out!, r.model, {
        name: 'generator',
        dataset: datasetMeta(data, Number(o.dataSeed)),
        training: { command: commandLine(), seed: Number(o.seed), epochs: Number(o.epochs), batchSize: Number(o.batchSize), learningRate: Number(o.lr), adversarial: null, trainSeconds: r.seconds, backend: backendInfo.packageName },
        metrics: { vaeLoss: r.loss },
      });
      log(`generator: loss ${r.loss.toFixed(3)}, ${r.seconds.toFixed(1)} s -> ${o.out}`);
    });
}
