/**
 * In-memory image datasets: NHWC float32 pixels in [0,1] plus int32 labels, and small pure
 * helpers (subsetting, batching, seeded shuffling). Only `toTensor` touches TensorFlow.
 */
import type { Tensor1D, Tensor4D } from '@tensorflow/tfjs-node';
import { tf } from '../backend/tf.ts';

/** A set of images stored NHWC (n x height x width x channels), float32 in [0,1]. */
export interface ImageSet {
  images: Float32Array;
  labels: Int32Array;
  n: number;
  height: number;
  width: number;
  channels: number;
}

export interface DatasetSplits {
  name: string;
  train: ImageSet;
  validation: ImageSet;
  test: ImageSet;
  numClasses: number;
  /** Class names by label (folder datasets keep them); absent means labels 0..numClasses-1. */
  classNames?: readonly string[];
}

/** Image size of a dataset (all splits share it). */
export function datasetShape(data: DatasetSplits): { height: number; width: number; channels: number } {
  const { height, width, channels } = data.train;
  return { height, width, channels };
}

/** Class name of a label: the dataset's name for it, else the label as a string. */
export function className(data: Pick<DatasetSplits, 'classNames'>, label: number): string {
  return data.classNames?.[label] ?? String(label);
}

import { mulberry32, type Rng } from '../nn/random.ts';

export { mulberry32, type Rng } from '../nn/random.ts';

/** Number of floats per image. */
export function imageSize(set: Pick<ImageSet, 'height' | 'width' | 'channels'>): number {
  return set.height * set.width * set.channels;
}

/** A view-free copy of image `i` (length height*width*channels). */
export function imageAt(set: ImageSet, i: number): Float32Array {
  const sz = imageSize(set);
  if (!Number.isInteger(i) || i < 0 || i >= set.n) throw new RangeError(`image index ${i} out of range [0, ${set.n})`);
  return set.images.slice(i * sz, (i + 1) * sz);
}

/** A new ImageSet holding the given images, in the given order (indices may repeat). */
export function subset(set: ImageSet, indices: ArrayLike<number>): ImageSet {
  const sz = imageSize(set);
  const n = indices.length;
  const images = new Float32Array(n * sz);
  const labels = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    const i = indices[k]!;
    if (!Number.isInteger(i) || i < 0 || i >= set.n) throw new RangeError(`subset: index ${i} out of range [0, ${set.n})`);
    images.set(set.images.subarray(i * sz, (i + 1) * sz), k * sz);
    labels[k] = set.labels[i]!;
  }
  return { images, labels, n, height: set.height, width: set.width, channels: set.channels };
}

/** The same splits with only the first `maxTrain` training images (a training budget, not a re-split). */
export function limitTrain(data: DatasetSplits, maxTrain: number | undefined): DatasetSplits {
  if (maxTrain === undefined || maxTrain >= data.train.n) return data;
  if (!Number.isInteger(maxTrain) || maxTrain < 1) throw new RangeError(`--max-train must be a positive integer, got ${maxTrain}`);
  return { ...data, train: subset(data.train, Array.from({ length: maxTrain }, (_, i) => i)) };
}

/** The first min(n, set.n) images. */
export function take(set: ImageSet, n: number): ImageSet {
  const m = Math.max(0, Math.min(Math.floor(n), set.n));
  return subset(set, range(m));
}

/** Tensors for a set: x [n,h,w,c] float32, y [n] int32. The caller owns (and disposes) them. */
export function toTensor(set: ImageSet): { x: Tensor4D; y: Tensor1D } {
  const x = tf.tensor4d(set.images, [set.n, set.height, set.width, set.channels], 'float32');
  const y = tf.tensor1d(set.labels, 'int32');
  return { x, y };
}

/**
 * Index batches over a set: consecutive when no rng is given, a fresh seeded permutation
 * otherwise. The last batch may be smaller.
 */
export function* batches(set: Pick<ImageSet, 'n'>, batchSize: number, rng?: Rng): Generator<Int32Array> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  const order = rng ? shuffled(range(set.n), rng) : range(set.n);
  for (let s = 0; s < set.n; s += batchSize) yield order.slice(s, Math.min(s + batchSize, set.n));
}

/** 0..n-1 as an Int32Array. */
export function range(n: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  return a;
}

/** A shuffled copy (Fisher-Yates driven by `rng`); the input is left untouched. */
export function shuffled<T extends Int32Array | number[]>(items: T, rng: Rng): T {
  const a = items.slice() as T;
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const tmp = a[i]!;
    a[i] = a[j]!;
    a[j] = tmp;
  }
  return a;
}

/** A seeded permutation of 0..n-1. */
export function permutation(n: number, seed: number): Int32Array {
  return shuffled(range(n), mulberry32(seed));
}

/** Per-class counts (length numClasses). */
export function classCounts(set: Pick<ImageSet, 'labels'>, numClasses: number): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  for (const l of set.labels) {
    if (l < 0 || l >= numClasses) throw new RangeError(`label ${l} outside [0, ${numClasses})`);
    counts[l]!++;
  }
  return counts;
}

/** Min and max pixel value. */
export function pixelRange(set: Pick<ImageSet, 'images'>): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (const v of set.images) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}

/**
 * Split a set into train/validation by a seeded permutation: `validationSize` images go to
 * validation, the rest to train (both in permuted order).
 */
export function splitValidation(set: ImageSet, validationSize: number, seed: number): { train: ImageSet; validation: ImageSet } {
  if (!Number.isInteger(validationSize) || validationSize < 0 || validationSize >= set.n) {
    throw new RangeError(`validation size ${validationSize} must be in [0, ${set.n})`);
  }
  const perm = permutation(set.n, seed);
  return { validation: subset(set, perm.subarray(0, validationSize)), train: subset(set, perm.subarray(validationSize)) };
}
