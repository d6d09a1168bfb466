/**
 * Feature Squeezing (Xu et al. 2018) as purifier-like stages, for a side-by-side baseline:
 *   bits1    colour bit-depth reduction to 1 bit (x -> round(x));
 *   median2  2x2 median filter (median of four = (sum - max - min) / 2), edge-replicated;
 * For MNIST the paper's detector takes the larger L1 score over both squeezers: run the
 * pipelines `bits1` and `median2` together and use the combined score.
 */
import { tf } from '../backend/tf.ts';
import type { Tensor4D } from '@tensorflow/tfjs-node';
import type { Stage } from '../purify/pipeline.ts';

export function bitDepth(x: Tensor4D, bits: number): Tensor4D {
  const levels = 2 ** bits - 1;
  return tf.tidy(() => tf.div(tf.round(tf.mul(x, levels)), levels) as Tensor4D);
}

export function median2x2(x: Tensor4D): Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    // Window anchored at each pixel covering (y..y+1, x..x+1), replicating the last row/col.
    const padded = tf.concat([x, tf.slice(x, [0, h - 1, 0, 0], [n, 1, w, c])], 1);
    const p2 = tf.concat([padded, tf.slice(padded, [0, 0, w - 1, 0], [n, h + 1, 1, c])], 2);
    const a = tf.slice(p2, [0, 0, 0, 0], [n, h, w, c]);
    const b = tf.slice(p2, [0, 1, 0, 0], [n, h, w, c]);
    const d = tf.slice(p2, [0, 0, 1, 0], [n, h, w, c]);
    const e = tf.slice(p2, [0, 1, 1, 0], [n, h, w, c]);
    const sum = tf.addN([a, b, d, e]);
    const mx = tf.maximum(tf.maximum(a, b), tf.maximum(d, e));
    const mn = tf.minimum(tf.minimum(a, b), tf.minimum(d, e));
    return tf.div(tf.sub(tf.sub(sum, mx), mn), 2) as Tensor4D;
  });
}

export const SQUEEZE_STAGES: Record<string, (name: string) => Stage> = {
  bits1: (name) => ({ name, apply: (x) => bitDepth(x, 1), flopsPerImage: (h, w) => 2 * h * w }),
  median2: (name) => ({ name, apply: (x) => median2x2(x), flopsPerImage: (h, w) => 12 * h * w }),
};
