/**
 * k x k split and stitch. An image [N,H,W,C] is zero-padded (bottom/right) to multiples of
 * k, cut into k*k tiles, and the tiles of all images form one batch [N*k*k, H/k, W/k, C]
 * (image-major, then row-major tiles). stitch() is the exact inverse. Both are plain
 * reshapes/transposes, so they are differentiable (BPDA flows through them). The backend is
 * passed in (`tf`), so importing this module loads no TensorFlow.
 */
import type { Tensor4D } from '@tensorflow/tfjs-node';
import type { TF } from './stages/types.ts';

export function tileSize(h: number, w: number, k: number): [number, number] {
  return [Math.ceil(h / k), Math.ceil(w / k)];
}

export function splitTiles(tf: TF, x: Tensor4D, k: number): Tensor4D {
  if (!Number.isInteger(k) || k < 1) throw new Error(`split factor must be a positive integer, got ${k}`);
  if (k === 1) return x;
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const [th, tw] = tileSize(h, w, k);
    const padded = th * k !== h || tw * k !== w ? tf.pad(x, [[0, 0], [0, th * k - h], [0, tw * k - w], [0, 0]]) : x;
    const r = tf.reshape(padded, [n, k, th, k, tw, c]);
    return tf.reshape(tf.transpose(r, [0, 1, 3, 2, 4, 5]), [n * k * k, th, tw, c]) as Tensor4D;
  });
}

export function stitchTiles(tf: TF, tiles: Tensor4D, k: number, h: number, w: number): Tensor4D {
  if (k === 1) return tiles;
  return tf.tidy(() => {
    const [m, th, tw, c] = tiles.shape;
    const n = m / (k * k);
    if (!Number.isInteger(n)) throw new Error(`tile batch ${m} is not a multiple of ${k * k}`);
    const r = tf.reshape(tiles, [n, k, k, th, tw, c]);
    const img = tf.reshape(tf.transpose(r, [0, 1, 3, 2, 4, 5]), [n, k * th, k * tw, c]) as Tensor4D;
    return th * k !== h || tw * k !== w ? (tf.slice(img, [0, 0, 0, 0], [n, h, w, c]) as Tensor4D) : img;
  });
}
