/**
 * Trains a VQ-VAE purifier on whole images (split 1) or on the tiles of a k x k split.
 * Clean-only (the paper) or Defense-VAE style (`adversarial`): part of each batch is
 * attacked against the classifier (FGSM or PGD at a random epsilon) and the target is the
 * clean image. Keeps the epoch with the best validation reconstruction error.
 */
import { tf } from '../backend/tf.ts';
import type { Scalar, Tensor, Tensor1D, Tensor2D, Tensor4D } from '@tensorflow/tfjs-node';
import { batches, mulberry32, subset, type DatasetSplits, type ImageSet } from '../data/dataset.ts';
import type { Classifier } from '../detect/classifier.ts';
import { VqVae } from '../purify/vqvae.ts';
import { defaultVqVaeConfig } from '../purify/vqvaeConfig.ts';
import { splitTiles, tileSize } from '../purify/split.ts';
import { fgsm, pgd } from '../attacks/attacks.ts';
import { batchTensor } from './evaluate.ts';
import { epochBar, interruptFlag } from './progress.ts';

export interface AdversarialTrainingOptions {
  classifier: Classifier;
  /** Share of each batch that is attacked (the rest stays clean). */
  fraction: number;
  maxEps: number;
  pgdSteps: number;
}

export interface PurifierTrainOptions {
  seed: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  split: number;
  codebookSize?: number;
  /** VQ-VAE stride-2 stages (default from the tile size: 2 up to 64x64, see defaultDownsamples). */
  downsamples?: number;
  adversarial?: AdversarialTrainingOptions;
  /** Stop training at this time (ms since the epoch; `fit --budget`); the best epoch so far is kept. */
  deadline?: number;
  /** Limit training images (for quick runs and tests). */
  log?: (line: string) => void;
}

export interface EpochStats {
  epoch: number;
  loss: number;
  reconMse: number;
  perplexity: number;
  codesUsed: number;
  deadCodes: number;
  restarts: number;
  validationMse: number;
}

export interface PurifierTrainResult {
  model: VqVae;
  history: EpochStats[];
  metrics: { validationMse: number; testMse: number; bestEpoch: number; perplexity: number; codesUsed: number; deadCodes: number };
  seconds: number;
  /** Stopped by Ctrl-C. */
  interrupted: boolean;
}

/** Mean squared reconstruction error over a set (whole images through split/purify/stitch). */
export function reconstructionMse(model: VqVae, set: ImageSet, split: number, batch = 200): number {
  let sum = 0;
  for (let s = 0; s < set.n; s += batch) {
    const e = Math.min(set.n, s + batch);
    const v = tf.tidy(() => {
      const x = splitTiles(tf, batchTensor(set, s, e), split);
      return tf.sum(tf.square(tf.sub(model.reconstruct(x), x)));
    });
    sum += v.dataSync()[0]!;
    v.dispose();
  }
  return sum / (set.n * set.height * set.width * set.channels);
}

export function trainPurifier(data: DatasetSplits, opts: PurifierTrainOptions): PurifierTrainResult {
  const train = data.train;
  const [th, tw] = tileSize(train.height, train.width, opts.split);
  const config = defaultVqVaeConfig({
    height: th,
    width: tw,
    channels: train.channels,
    split: opts.split,
    ...(opts.codebookSize ? { codebookSize: opts.codebookSize } : {}),
    ...(opts.downsamples ? { downsamples: opts.downsamples } : {}),
  });
  const model = new VqVae(config, opts.seed);
  const optimizer = tf.train.adam(opts.learningRate);
  const rng = mulberry32(opts.seed);
  const stop = interruptFlag();
  const t0 = Date.now();
  const history: EpochStats[] = [];
  let best = { mse: Infinity, epoch: 0, weights: model.params.snapshot() };
  for (let epoch = 1; epoch <= opts.epochs && !stop.stopped && !(opts.deadline !== undefined && epoch > 1 && Date.now() > opts.deadline); epoch++) {
    const steps = Math.ceil(train.n / opts.batchSize);
    const bar = epochBar(`purifier split${opts.split} K=${config.codebookSize} epoch ${epoch}/${opts.epochs}`, steps);
    let lossSum = 0, mseSum = 0, pplSum = 0, restarts = 0, step = 0;
    const used = new Uint8Array(config.codebookSize);
    for (const idx of batches(train, opts.batchSize, rng)) {
      if (stop.stopped || (opts.deadline !== undefined && epoch > 1 && Date.now() > opts.deadline)) break; // the first epoch always completes
      const b = subset(train, idx);
      const seed = Math.floor(rng() * 1e9);
      const { input, target } = makeBatch(b, opts, rng, seed);
      const xIn = splitTiles(tf, input, opts.split);
      const xT = splitTiles(tf, target, opts.split);
      if (!model.initialised) model.initCodebook(xIn, seed);
      let ze: Tensor2D | null = null;
      let indices: Tensor | null = null;
      const parts: Scalar[] = [];
      const loss = optimizer.minimize(
        () => {
          const out = model.forward(xIn);
          const recon = tf.mean(tf.square(tf.sub(out.recon, xT))) as Scalar;
          const commit = tf.mean(tf.square(tf.sub(out.ze, out.qConst))) as Scalar;
          ze = tf.keep(out.ze);
          indices = tf.keep(out.indices);
          parts.push(tf.keep(recon.clone()));
          return tf.add(recon, tf.mul(config.commitmentBeta, commit)) as Scalar;
        },
        true,
        model.params.trainable(),
      )!;
      const st = model.emaUpdate(ze!, indices!, seed + 1);
      for (const i of (indices as unknown as Tensor).dataSync()) used[i] = 1;
      lossSum += loss.dataSync()[0]!;
      mseSum += parts[0]!.dataSync()[0]!;
      pplSum += st.perplexity;
      restarts += st.restarted;
      tf.dispose([loss, ze!, indices!, ...parts, input, target, xIn, xT]);
      step++;
      bar.update(step, { loss: (lossSum / step).toFixed(5), ppl: (pplSum / step).toFixed(1) });
    }
    bar.stop();
    if (step === 0) break;
    const validationMse = reconstructionMse(model, data.validation, opts.split);
    const deadCodes = countBelow(model.emaCount.dataSync(), config.deadCodeThreshold);
    const stats: EpochStats = {
      epoch,
      loss: lossSum / step,
      reconMse: mseSum / step,
      perplexity: pplSum / step,
      codesUsed: used.reduce((a, b) => a + b, 0),
      deadCodes,
      restarts,
      validationMse,
    };
    history.push(stats);
    opts.log?.(
      `purifier split${opts.split} epoch ${epoch}: loss=${stats.loss.toFixed(5)} mse=${stats.reconMse.toFixed(5)} valMse=${validationMse.toFixed(5)} ` +
        `perplexity=${stats.perplexity.toFixed(1)} codesUsed=${stats.codesUsed}/${config.codebookSize} restarts=${restarts}`,
    );
    if (validationMse < best.mse) best = { mse: validationMse, epoch, weights: model.params.snapshot() };
  }
  const interrupted = stop.stopped;
  stop.dispose();
  model.params.restore(best.weights);
  optimizer.dispose();
  const bestStats = history.find((h) => h.epoch === best.epoch);
  return {
    model,
    history,
    metrics: {
      validationMse: best.mse,
      testMse: reconstructionMse(model, data.test, opts.split),
      bestEpoch: best.epoch,
      perplexity: bestStats?.perplexity ?? 0,
      codesUsed: bestStats?.codesUsed ?? 0,
      deadCodes: bestStats?.deadCodes ?? 0,
    },
    seconds: (Date.now() - t0) / 1000,
    interrupted,
  };
}

function countBelow(a: ArrayLike<number>, t: number): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i]! < t) n++;
  return n;
}

/** Clean batch, or (adversarial training) a batch whose first part is attacked. */
function makeBatch(b: ImageSet, opts: PurifierTrainOptions, rng: () => number, seed: number): { input: Tensor4D; target: Tensor4D } {
  const target = tf.tensor4d(b.images, [b.n, b.height, b.width, b.channels]);
  const adv = opts.adversarial;
  if (!adv) return { input: target.clone(), target };
  const nAdv = Math.round(b.n * adv.fraction);
  if (nAdv === 0) return { input: target.clone(), target };
  const eps = 0.02 + rng() * (adv.maxEps - 0.02);
  const usePgd = rng() < 0.5;
  const input = tf.tidy(() => {
    const xa = tf.slice(target, [0, 0, 0, 0], [nAdv, -1, -1, -1]) as Tensor4D;
    const ya = tf.tensor1d(b.labels.subarray(0, nAdv), 'int32') as Tensor1D;
    const f = (x: Tensor4D) => adv.classifier.logits(x);
    const attacked = usePgd ? pgd(f, xa, ya, { eps, steps: adv.pgdSteps, seed }) : fgsm(f, xa, ya, eps);
    if (nAdv === b.n) return attacked;
    return tf.concat([attacked, tf.slice(target, [nAdv, 0, 0, 0], [-1, -1, -1, -1])]) as Tensor4D;
  });
  return { input, target };
}
