/**
 * L-infinity attacks in pixel space on [0,1]: FGSM and PGD (random start). They attack any
 * differentiable logits function: the classifier alone (the paper's threat model), or
 * purifier-then-classifier with a straight-through quantiser (BPDA, the adaptive attack).
 */
import { tf } from '../backend/tf.ts';
import type { Tensor1D, Tensor2D, Tensor4D } from '@tensorflow/tfjs-node';

export type LogitsFn = (x: Tensor4D) => Tensor2D;

export interface PgdOptions {
  eps: number;
  steps: number;
  /** Step size; default 2.5 * eps / steps (Madry et al.). */
  stepSize?: number;
  randomStart?: boolean;
  seed?: number;
}

export type AttackName = 'fgsm' | 'pgd' | 'bpda';

/** Gradient of the cross-entropy loss w.r.t. the input. */
export function inputGradient(f: LogitsFn, x: Tensor4D, labels: Tensor1D): Tensor4D {
  return tf.tidy(() => {
    const g = tf.grad((xi) => {
      const logits = f(xi as Tensor4D);
      const onehot = tf.oneHot(tf.cast(labels, 'int32') as Tensor1D, logits.shape[1]!);
      // (onehot, logits, weights, labelSmoothing = 0, reduction = SUM)
      return tf.losses.softmaxCrossEntropy(onehot, logits, undefined, 0, tf.Reduction.SUM);
    });
    return g(x) as Tensor4D;
  });
}

export function fgsm(f: LogitsFn, x: Tensor4D, labels: Tensor1D, eps: number): Tensor4D {
  if (eps === 0) return tf.clone(x);
  return tf.tidy(() => tf.clipByValue(tf.add(x, tf.mul(eps, tf.sign(inputGradient(f, x, labels)))), 0, 1) as Tensor4D);
}

export function pgd(f: LogitsFn, x: Tensor4D, labels: Tensor1D, opts: PgdOptions): Tensor4D {
  const { eps, steps } = opts;
  if (eps === 0) return tf.clone(x);
  const alpha = opts.stepSize ?? (2.5 * eps) / steps;
  let adv = tf.tidy(() =>
    opts.randomStart === false
      ? tf.clone(x)
      : (tf.clipByValue(tf.add(x, tf.randomUniform(x.shape, -eps, eps, 'float32', opts.seed ?? 0)), 0, 1) as Tensor4D),
  );
  for (let i = 0; i < steps; i++) {
    const next = tf.tidy(() => {
      const stepped = tf.add(adv, tf.mul(alpha, tf.sign(inputGradient(f, adv, labels))));
      const projected = tf.minimum(tf.maximum(stepped, tf.sub(x, eps)), tf.add(x, eps));
      return tf.clipByValue(projected, 0, 1) as Tensor4D;
    });
    adv.dispose();
    adv = next;
  }
  return adv;
}

export interface AttackSpec {
  name: AttackName;
  steps?: number;
  stepSize?: number;
  seed?: number;
}

/**
 * Runs an attack. `target` is what the attacker differentiates: the bare classifier for
 * fgsm/pgd, the full purify-then-classify path for bpda (PGD with a straight-through
 * quantiser, i.e. Backward Pass Differentiable Approximation).
 */
export function runAttack(spec: AttackSpec, target: LogitsFn, x: Tensor4D, labels: Tensor1D, eps: number): Tensor4D {
  switch (spec.name) {
    case 'fgsm':
      return fgsm(target, x, labels, eps);
    case 'pgd':
    case 'bpda':
      return pgd(target, x, labels, { eps, steps: spec.steps ?? 40, stepSize: spec.stepSize, seed: spec.seed });
    default:
      throw new Error(`unknown attack ${(spec as AttackSpec).name}: expected fgsm, pgd or bpda`);
  }
}
