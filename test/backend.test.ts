import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, backendInfo, tfVersion } from '../src/backend/tf.ts';
import type { Tensor4D } from '@tensorflow/tfjs-node';

test('the native TensorFlow backend is loaded', async () => {
  await tf.ready();
  assert.equal(backendInfo.native, true, 'native backend expected');
  assert.equal(tf.getBackend(), 'tensorflow');
  assert.match(tfVersion() ?? '', /^\d+\.\d+/);
});

// Float64 reference conv2d (NHWC, HWIO, stride 1, 'valid') and its gradients, in plain JS.
function rng(seed: number) {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648 - 0.5;
  };
}

test('conv2d forward and gradients match a float64 reference (rel. error < 1e-4)', () => {
  const [n, h, w, ci, co, k] = [2, 7, 6, 3, 4, 3];
  const r = rng(42);
  const x = Float64Array.from({ length: n * h * w * ci }, r);
  const f = Float64Array.from({ length: k * k * ci * co }, r);
  const dy = Float64Array.from({ length: n * (h - k + 1) * (w - k + 1) * co }, r);
  const oh = h - k + 1, ow = w - k + 1;
  const xi = (b: number, y: number, xx: number, c: number) => ((b * h + y) * w + xx) * ci + c;
  const fi = (a: number, bb: number, c: number, o: number) => ((a * k + bb) * ci + c) * co + o;
  const yi = (b: number, y: number, xx: number, o: number) => ((b * oh + y) * ow + xx) * co + o;
  const y = new Float64Array(n * oh * ow * co);
  const dx = new Float64Array(x.length);
  const df = new Float64Array(f.length);
  for (let b = 0; b < n; b++)
    for (let p = 0; p < oh; p++)
      for (let q = 0; q < ow; q++)
        for (let o = 0; o < co; o++)
          for (let a = 0; a < k; a++)
            for (let bb = 0; bb < k; bb++)
              for (let c = 0; c < ci; c++) {
                y[yi(b, p, q, o)]! += x[xi(b, p + a, q + bb, c)]! * f[fi(a, bb, c, o)]!;
                dx[xi(b, p + a, q + bb, c)]! += dy[yi(b, p, q, o)]! * f[fi(a, bb, c, o)]!;
                df[fi(a, bb, c, o)]! += dy[yi(b, p, q, o)]! * x[xi(b, p + a, q + bb, c)]!;
              }
  const tx = tf.tensor4d(Float32Array.from(x), [n, h, w, ci]);
  const tfil = tf.tensor4d(Float32Array.from(f), [k, k, ci, co]);
  const tdy = tf.tensor4d(Float32Array.from(dy), [n, oh, ow, co]);
  const ty = tf.conv2d(tx, tfil, 1, 'valid');
  const [gx, gf] = tf.grads((a, b) => tf.sum(tf.mul(tf.conv2d(a as Tensor4D, b as Tensor4D, 1, 'valid'), tdy)))([tx, tfil]);
  const relErr = (got: ArrayLike<number>, want: Float64Array) => {
    let num = 0, den = 0;
    for (let i = 0; i < want.length; i++) {
      num += (got[i]! - want[i]!) ** 2;
      den += want[i]! ** 2;
    }
    return Math.sqrt(num / den);
  };
  assert.ok(relErr(ty.dataSync(), y) < 1e-4, `forward rel err ${relErr(ty.dataSync(), y)}`);
  assert.ok(relErr(gx!.dataSync(), dx) < 1e-4, `dx rel err ${relErr(gx!.dataSync(), dx)}`);
  assert.ok(relErr(gf!.dataSync(), df) < 1e-4, `dfilter rel err ${relErr(gf!.dataSync(), df)}`);
  tf.dispose([tx, tfil, tdy, ty, gx!, gf!]);
});
