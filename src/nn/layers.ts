/** Functional layers over a ParamStore. Shapes are NHWC. */
import { tf } from '../backend/tf.ts';
import type { Tensor4D, Tensor2D } from '@tensorflow/tfjs-node';
import { ParamStore, heNormal } from './params.ts';

export function addConv(p: ParamStore, name: string, k: number, cin: number, cout: number, seed: number): void {
  p.add(`${name}/w`, heNormal([k, k, cin, cout], k * k * cin, seed));
  p.add(`${name}/b`, tf.zeros([cout]));
}

/** Transposed conv kernel is [kh, kw, out, in] in TF's layout. */
export function addConvT(p: ParamStore, name: string, k: number, cin: number, cout: number, seed: number, bias = 0): void {
  p.add(`${name}/w`, heNormal([k, k, cout, cin], k * k * cin, seed));
  p.add(`${name}/b`, tf.fill([cout], bias));
}

export function addDense(p: ParamStore, name: string, nin: number, nout: number, seed: number): void {
  p.add(`${name}/w`, heNormal([nin, nout], nin, seed));
  p.add(`${name}/b`, tf.zeros([nout]));
}

export function conv(p: ParamStore, name: string, x: Tensor4D, stride: number, pad: 'same' | 'valid' = 'same'): Tensor4D {
  return tf.add(tf.conv2d(x, p.get(`${name}/w`) as unknown as Tensor4D, stride, pad), p.get(`${name}/b`));
}

export function convT(p: ParamStore, name: string, x: Tensor4D, stride: number, outHW: [number, number]): Tensor4D {
  const w = p.get(`${name}/w`);
  const cout = w.shape[2]!;
  const [n] = x.shape;
  return tf.add(
    tf.conv2dTranspose(x, w as unknown as Tensor4D, [n, outHW[0], outHW[1], cout], stride, 'same'),
    p.get(`${name}/b`),
  );
}

export function dense(p: ParamStore, name: string, x: Tensor2D): Tensor2D {
  return tf.add(tf.matMul(x, p.get(`${name}/w`) as unknown as Tensor2D), p.get(`${name}/b`));
}

/** Residual block: x + conv(relu(x)). */
export function residual(p: ParamStore, name: string, x: Tensor4D): Tensor4D {
  return tf.add(x, conv(p, name, tf.relu(x), 1));
}
