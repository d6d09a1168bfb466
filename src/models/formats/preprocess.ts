/**
 * vqguard's pixels ([N,H,W,C], [0,1]) -> the model's declared input, and the model's output ->
 * probabilities. Pure TF.js ops, so gradients flow through them.
 */
import type { Tensor2D, Tensor4D } from '@tensorflow/tfjs-node';
import { tf } from '../../backend/tf.ts';
import type { ClassifierDeclaration } from './declaration.ts';

export function toModelInput(x: Tensor4D, d: ClassifierDeclaration): Tensor4D {
  return tf.tidy(() => {
    const r = d.input.range;
    let y: Tensor4D = x;
    if (r === '0-255') y = tf.mul(x, 255);
    else if (typeof r === 'object') y = tf.div(tf.sub(x, tf.tensor1d(r.mean)), tf.tensor1d(r.std));
    if (d.input.layout === 'NCHW') y = tf.transpose(y, [0, 3, 1, 2]);
    return y;
  });
}

/** Probabilities from the model's output as declared. */
export function toProbabilities(out: Tensor2D, d: ClassifierDeclaration): Tensor2D {
  return tf.tidy(() => (d.output.kind === 'logits' ? tf.softmax(out) : (tf.clone(out) as Tensor2D)));
}

/** Scores whose softmax is the probabilities: logits as they are, log p for probabilities. */
export function toLogits(out: Tensor2D, d: ClassifierDeclaration): Tensor2D {
  return d.output.kind === 'logits' ? out : (tf.log(tf.add(out, 1e-12)) as Tensor2D);
}

/** The model-side shape [N,...] the declaration implies, with -1 for the batch. */
export function declaredInputShape(d: ClassifierDeclaration): number[] {
  const { height: h, width: w, channels: c, layout } = d.input;
  return layout === 'NHWC' ? [-1, h, w, c] : [-1, c, h, w];
}
