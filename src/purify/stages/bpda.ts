/**
 * Backward-pass approximations for non-differentiable stages (BPDA). `identityBackward` keeps
 * the forward value of `f` and hands the incoming gradient through unchanged: the
 * straight-through estimator for rounding / quantisation, and the identity approximation for
 * whole stages without a useful gradient. `f` runs on a detached copy of the input, outside
 * the caller's gradient tape, so an `f` with its own inner optimisation (Defense-GAN) or with
 * gradient-less ops (topk) is fine.
 */
import type { Tensor, Tensor4D } from '@tensorflow/tfjs-node';
import type { TF } from './types.ts';

export function identityBackward(tf: TF, f: (x: Tensor4D) => Tensor4D): (x: Tensor4D) => Tensor4D {
  return (x: Tensor4D) => {
    const value = tf.tidy(() => f(tf.tensor4d(x.dataSync() as Float32Array, x.shape)));
    const shape = value.shape;
    const y = tf.customGrad((...args) => {
      const v = args[1] as Tensor4D;
      return { value: tf.clone(v), gradFunc: (dy: Tensor) => [dy, tf.zeros(shape)] };
    })(x, value) as Tensor4D;
    value.dispose();
    return y;
  };
}
