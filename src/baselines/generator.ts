/**
 * The generator for the Defense-GAN-style baseline: a small convolutional decoder
 * z (32) -> dense 7x7x64 -> convT 4x4/2 (32) -> convT 4x4/2 (C) -> sigmoid, trained as the
 * decoder of a VAE (the encoder is discarded after training; only G is needed).
 * Purification (Samangouei et al. 2018): for each image, R random restarts of L steps of
 * gradient descent on z minimising ||G(z) - x||^2; the best restart's G(z) is the output.
 */
import { tf } from '../backend/tf.ts';
import type { Scalar, Tensor2D, Tensor4D } from '@tensorflow/tfjs-node';
import { ParamStore, seedStream } from '../nn/params.ts';
import { addConv, addConvT, addDense, conv, convT, dense } from '../nn/layers.ts';

export interface GeneratorConfig {
  kind: 'generator';
  height: number;
  width: number;
  channels: number;
  latent: number;
}

export class Generator {
  readonly params = new ParamStore();

  constructor(readonly config: GeneratorConfig, seed = 1) {
    const { latent, channels } = config;
    if (config.height % 4 || config.width % 4) throw new Error('generator: height and width must be multiples of 4');
    const next = seedStream(seed);
    const p = this.params;
    const gh = config.height / 4, gw = config.width / 4;
    addDense(p, 'g/fc', latent, gh * gw * 64, next());
    addConvT(p, 'g/up1', 4, 64, 32, next());
    addConvT(p, 'g/up2', 4, 32, channels, next(), -2);
    // Encoder (training only; saved with the bundle for reproducibility).
    addConv(p, 'e/c1', 4, channels, 32, next());
    addConv(p, 'e/c2', 4, 32, 64, next());
    addDense(p, 'e/mu', gh * gw * 64, latent, next());
    addDense(p, 'e/logvar', gh * gw * 64, latent, next());
  }

  generate(z: Tensor2D): Tensor4D {
    const { height: h, width: w } = this.config;
    const p = this.params;
    const n = z.shape[0];
    let t = tf.reshape(tf.relu(dense(p, 'g/fc', z)), [n, h / 4, w / 4, 64]) as Tensor4D;
    t = tf.relu(convT(p, 'g/up1', t, 2, [h / 2, w / 2]));
    return tf.sigmoid(convT(p, 'g/up2', t, 2, [h, w]));
  }

  encode(x: Tensor4D): { mu: Tensor2D; logvar: Tensor2D } {
    const p = this.params;
    let h = tf.relu(conv(p, 'e/c1', x, 2));
    h = tf.relu(conv(p, 'e/c2', h, 2));
    const f = tf.reshape(h, [x.shape[0], -1]) as Tensor2D;
    return { mu: dense(p, 'e/mu', f), logvar: dense(p, 'e/logvar', f) };
  }

  /** VAE loss (sum of squared error per image + KL), mean over the batch. */
  vaeLoss(x: Tensor4D, seed: number): Scalar {
    const { mu, logvar } = this.encode(x);
    const eps = tf.randomNormal(mu.shape, 0, 1, 'float32', seed);
    const z = tf.add(mu, tf.mul(tf.exp(tf.mul(0.5, logvar)), eps)) as Tensor2D;
    const rec = tf.sum(tf.square(tf.sub(this.generate(z), x)), [1, 2, 3]);
    const kl = tf.mul(-0.5, tf.sum(tf.sub(tf.sub(tf.add(1, logvar), tf.square(mu)), tf.exp(logvar)), 1));
    return tf.mean(tf.add(tf.mul(rec, 10), kl)) as Scalar;
  }

  /** Defense-GAN purification: L gradient steps on z, R restarts, best reconstruction wins. */
  purify(x: Tensor4D, steps: number, restarts: number, lr = 0.05, seed = 0): Tensor4D {
    const [n, h, w, c] = x.shape;
    const latent = this.config.latent;
    const target = tf.tidy(() => tf.reshape(tf.tile(tf.expandDims(x, 1), [1, restarts, 1, 1, 1]), [n * restarts, h, w, c]) as Tensor4D);
    const z = tf.variable(tf.randomNormal([n * restarts, latent], 0, 1, 'float32', seed), true);
    const opt = tf.train.adam(lr);
    for (let i = 0; i < steps; i++) {
      tf.tidy(() => {
        opt.minimize(() => tf.sum(tf.square(tf.sub(this.generate(z as unknown as Tensor2D), target))) as Scalar, false, [z]);
      });
    }
    const out = tf.tidy(() => {
      const g = this.generate(z as unknown as Tensor2D);
      const err = tf.reshape(tf.sum(tf.square(tf.sub(g, target)), [1, 2, 3]), [n, restarts]);
      const best = tf.argMin(err, 1);
      const idx = tf.cast(tf.add(tf.mul(tf.range(0, n, 1, 'int32'), tf.scalar(restarts, 'int32')), tf.cast(best, 'int32')), 'int32');
      return tf.gather(g, idx) as Tensor4D;
    });
    tf.dispose([target, z]);
    opt.dispose();
    return out;
  }

  dispose(): void {
    this.params.dispose();
  }
}
