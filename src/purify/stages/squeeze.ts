/**
 * Feature Squeezing (Xu et al. 2018) as purifier-like stages, for a side-by-side baseline:
 *   bits<n>    colour bit-depth reduction to n bits (bits1: x -> round(x)), n = 1..8;
 *   median<k>  k x k median filter, edge-replicated (median2: window y..y+1, x..x+1), k = 2..5.
 * For MNIST the paper's detector takes the larger L1 score over both squeezers: run the
 * pipelines `bits1` and `median2` together and use the combined score. No bundles needed.
 */
import type { Tensor4D } from '@tensorflow/tfjs-node';
import { z } from 'zod';
import type { StageKind, TF } from './types.ts';
import { identityBackward } from './bpda.ts';

export const bitsStage: StageKind<{ n: number }> = {
  kind: 'bits',
  syntax: 'bits<n> (n = 1..8)',
  description: 'Feature Squeezing: colour bit-depth reduction to n bits',
  pattern: /^bits(?<n>\d+)$/,
  options: z.object({ n: z.coerce.number().int().min(1).max(8) }),
  bundles: () => [],
  bpda: 'straight-through',
  examples: ['bits1', 'bits3'],
  // Straight-through: tf.round's own gradient is zero, which made BPDA report bits1 as robust.
  create: (name, { n }, { tf }) => ({ name, bpda: 'straight-through', apply: identityBackward(tf, (x) => bitDepth(tf, x, n)), flopsPerImage: (h, w) => 2 * h * w }),
};

export const medianStage: StageKind<{ k: number }> = {
  kind: 'median',
  syntax: 'median<k> (k = 2..5)',
  description: 'Feature Squeezing: k x k median filter',
  pattern: /^median(?<k>\d+)$/,
  options: z.object({ k: z.coerce.number().int().min(2).max(5) }),
  bundles: () => [],
  bpda: 'identity',
  examples: ['median2', 'median3'],
  // median2 (sum - max - min) is differentiable as is; the sorting median (topk) has no
  // gradient in TF.js, so its backward is the identity.
  create: (name, { k }, { tf }) => ({
    name,
    bpda: k === 2 ? 'exact' : 'identity',
    apply: k === 2 ? (x) => medianFilter(tf, x, k) : identityBackward(tf, (x) => medianFilter(tf, x, k)),
    flopsPerImage: (h, w) => (k === 2 ? 12 : 2 * k * k * k * k) * h * w,
  }),
};

export function bitDepth(tf: TF, x: Tensor4D, bits: number): Tensor4D {
  const levels = 2 ** bits - 1;
  return tf.tidy(() => tf.div(tf.round(tf.mul(x, levels)), levels) as Tensor4D);
}

/**
 * k x k median, window rows y-a..y+b with a = floor((k-1)/2), b = k-1-a, edges replicated.
 * k = 2 uses median of four = (sum - max - min) / 2 (differentiable everywhere); larger k
 * sorts the window with topk.
 */
export function medianFilter(tf: TF, x: Tensor4D, k: number): Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const a = Math.floor((k - 1) / 2), b = k - 1 - a;
    const edge = (t: Tensor4D, axis: 1 | 2, before: number, after: number): Tensor4D => {
      const len = t.shape[axis];
      const first = axis === 1 ? tf.slice(t, [0, 0, 0, 0], [-1, 1, -1, -1]) : tf.slice(t, [0, 0, 0, 0], [-1, -1, 1, -1]);
      const last = axis === 1 ? tf.slice(t, [0, len - 1, 0, 0], [-1, 1, -1, -1]) : tf.slice(t, [0, 0, len - 1, 0], [-1, -1, 1, -1]);
      return tf.concat([...Array<Tensor4D>(before).fill(first as Tensor4D), t, ...Array<Tensor4D>(after).fill(last as Tensor4D)], axis) as Tensor4D;
    };
    const p = edge(edge(x, 1, a, b), 2, a, b);
    const windows: Tensor4D[] = [];
    for (let dx = 0; dx < k; dx++) for (let dy = 0; dy < k; dy++) windows.push(tf.slice(p, [0, dy, dx, 0], [n, h, w, c]));
    if (k === 2) {
      const [w0, w1, w2, w3] = windows as [Tensor4D, Tensor4D, Tensor4D, Tensor4D];
      const mx = tf.maximum(tf.maximum(w0, w1), tf.maximum(w2, w3));
      const mn = tf.minimum(tf.minimum(w0, w1), tf.minimum(w2, w3));
      return tf.div(tf.sub(tf.sub(tf.addN(windows), mx), mn), 2) as Tensor4D;
    }
    const m = k * k;
    const sorted = tf.topk(tf.stack(windows, 4), m).values; // [n,h,w,c,m], descending
    const mid = m % 2 ? tf.slice(sorted, [0, 0, 0, 0, (m - 1) / 2], [-1, -1, -1, -1, 1]) : tf.mean(tf.slice(sorted, [0, 0, 0, 0, m / 2 - 1], [-1, -1, -1, -1, 2]), 4, true);
    return tf.reshape(mid, [n, h, w, c]) as Tensor4D;
  });
}
