/** Trains the Defense-GAN-style baseline's generator as a VAE decoder (Adam, seeded). */
import { tf } from '../backend/tf.ts';
import type { Scalar } from '@tensorflow/tfjs-node';
import { batches, mulberry32, subset, type DatasetSplits } from '../data/dataset.ts';
import { Generator } from './generator.ts';

export function trainGenerator(data: DatasetSplits, o: { seed: number; epochs: number; batchSize: number; learningRate: number; latent: number; log?: (s: string) => void }) {
  const t = data.train;
  const g = new Generator({ kind: 'generator', height: t.height, width: t.width, channels: t.channels, latent: o.latent }, o.seed);
  const opt = tf.train.adam(o.learningRate);
  const rng = mulberry32(o.seed);
  const t0 = Date.now();
  let last = 0;
  for (let epoch = 1; epoch <= o.epochs; epoch++) {
    let sum = 0, n = 0;
    for (const idx of batches(t, o.batchSize, rng)) {
      const b = subset(t, idx);
      const seed = Math.floor(rng() * 1e9);
      const loss = tf.tidy(() => opt.minimize(() => g.vaeLoss(tf.tensor4d(b.images, [b.n, b.height, b.width, b.channels]), seed) as Scalar, true, g.params.trainable())!);
      sum += loss.dataSync()[0]!;
      loss.dispose();
      n++;
    }
    last = sum / n;
    o.log?.(`generator epoch ${epoch}: vae loss ${last.toFixed(3)}`);
  }
  opt.dispose();
  return { model: g, loss: last, seconds: (Date.now() - t0) / 1000 };
}
