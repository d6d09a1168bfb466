import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf } from '../src/backend/tf.ts';
import type { Tensor1D, Tensor4D } from '@tensorflow/tfjs-node';
import { VqVae } from '../src/purify/vqvae.ts';
import { defaultVqVaeConfig } from '../src/purify/vqvaeConfig.ts';
import { splitTiles, stitchTiles } from '../src/purify/split.ts';
import { composePipeline, type Stage } from '../src/purify/pipeline.ts';
import { parsePipeline } from '../src/purify/stages/index.ts';
import { vqStage } from '../src/purify/stages/vqvae.ts';
import { Classifier, defaultClassifierConfig } from '../src/detect/classifier.ts';
import { fgsm, inputGradient, pgd } from '../src/attacks/attacks.ts';
import { saveBundle, loadBundle, BundleError, convertBundleToFloat16, readManifest } from '../src/models/bundle.ts';
import { loadDataset } from '../src/data/load.ts';
import { trainPurifier } from '../src/train/trainPurifier.ts';
import { cosineLr, trainClassifier } from '../src/train/trainClassifier.ts';
import { take } from '../src/data/dataset.ts';

const small = (h: number, w: number, split = 1) =>
  new VqVae(defaultVqVaeConfig({ height: h, width: w, channels: 1, split, filters: 16, embeddingDim: 8, codebookSize: 32 }), 3);

test('VQ-VAE round-trips any input size (pad to a multiple of 4, crop back)', () => {
  for (const [h, w] of [[28, 28], [14, 14], [7, 7], [13, 17], [1, 5], [30, 9]] as const) {
    const m = small(h, w);
    const x = tf.randomUniform([2, h, w, 1], 0, 1, 'float32', 1) as Tensor4D;
    const y = m.reconstruct(x);
    assert.deepEqual(y.shape, [2, h, w, 1], `size ${h}x${w}`);
    const v = y.dataSync();
    assert.ok(v.every((p) => p >= 0 && p <= 1), 'sigmoid output in [0,1]');
    tf.dispose([x, y]);
    m.dispose();
  }
});

test('RGB inputs round-trip too', () => {
  const m = new VqVae(defaultVqVaeConfig({ height: 10, width: 12, channels: 3, filters: 8, embeddingDim: 4, codebookSize: 8 }), 1);
  const x = tf.randomUniform([1, 10, 12, 3]) as Tensor4D;
  assert.deepEqual(m.reconstruct(x).shape, [1, 10, 12, 3]);
  m.dispose();
});

test('split then stitch is the exact identity, for divisible and non-divisible sizes', () => {
  for (const [h, w, k] of [[28, 28, 2], [28, 28, 4], [28, 28, 3], [13, 17, 2], [28, 28, 1]] as const) {
    const x = tf.randomUniform([3, h, w, 2], 0, 1, 'float32', 7) as Tensor4D;
    const tiles = splitTiles(tf, x, k);
    assert.equal(tiles.shape[0], 3 * k * k);
    const back = stitchTiles(tf, tiles, k, h, w);
    assert.deepEqual(Array.from(back.dataSync()), Array.from(x.dataSync()), `${h}x${w} k=${k}`);
    tf.dispose([x, tiles, back]);
  }
});

test('a split stage with an identity purifier is the identity, and tiles are placed in order', () => {
  const identity: Stage = { name: 'id', bpda: 'exact', apply: (x) => x.clone(), flopsPerImage: () => 0 };
  const x = tf.tensor4d(Array.from({ length: 16 }, (_, i) => i), [1, 4, 4, 1]);
  const tiles = splitTiles(tf, x, 2);
  // Top-left tile holds pixels 0,1,4,5; top-right 2,3,6,7.
  assert.deepEqual(Array.from(tiles.slice([0], [1]).dataSync()), [0, 1, 4, 5]);
  assert.deepEqual(Array.from(tiles.slice([1], [1]).dataSync()), [2, 3, 6, 7]);
  const p = composePipeline('id>id', [identity, identity]);
  assert.deepEqual(Array.from(p.apply(x).dataSync()), Array.from(x.dataSync()));
});

test('pipeline specs parse; unknown stages are clear errors', () => {
  const opts = (spec: string) => parsePipeline(spec).stages.map((s) => [s.kind.kind, s.options]);
  assert.deepEqual(opts('split2>full'), [['vqvae', { k: 2 }], ['vqvae', { k: 1 }]]);
  assert.deepEqual(opts('split4>split2>full').map(([, o]) => (o as { k: number }).k), [4, 2, 1]);
  assert.deepEqual(opts('adv:bits1>median2'), [['bits', { n: 1 }], ['median', { k: 2 }]]);
  assert.deepEqual(opts('defensegan>defensegan-L50-R3'), [['defensegan', { steps: 200, restarts: 10 }], ['defensegan', { steps: 50, restarts: 3 }]]);
  assert.equal(parsePipeline('adv:full').variant, 'adv');
  assert.throws(() => parsePipeline('split0'), /pipeline stage "split0": k .*greater than or equal to 1/);
  assert.throws(() => parsePipeline('bits9'), /pipeline stage "bits9": n .*less than or equal to 8.*bits<n>/);
  assert.throws(() => parsePipeline('spilt2'), /unknown pipeline stage "spilt2"/);
  assert.throws(() => parsePipeline('full>'), /empty stage/);
  assert.throws(() => vqStage(tf, 2, small(28, 28, 1)), /trained for split 2/);
});

function tinyClassifier() {
  return new Classifier(defaultClassifierConfig({ height: 12, width: 12, channels: 1, classes: 3, conv1: 4, conv2: 4, hidden: 8 }), 5);
}

test('FGSM moves every pixel by exactly epsilon (or to the clip bound); zero-gradient pixels stay', () => {
  const clf = tinyClassifier();
  const x = tf.randomUniform([4, 12, 12, 1], 0, 1, 'float32', 9) as Tensor4D;
  const y = tf.tensor1d([0, 1, 2, 1], 'int32') as Tensor1D;
  const eps = 0.1;
  const adv = fgsm((xi) => clf.logits(xi), x, y, eps);
  const g = inputGradient((xi) => clf.logits(xi), x, y).dataSync();
  const xv = x.dataSync(), av = adv.dataSync();
  let moved = 0;
  for (let i = 0; i < xv.length; i++) {
    const s = Math.sign(g[i]!);
    const want = Math.min(1, Math.max(0, xv[i]! + eps * s));
    assert.ok(Math.abs(av[i]! - want) < 1e-6, `pixel ${i}: ${av[i]} vs ${want}`);
    if (s !== 0) moved++;
  }
  assert.ok(moved > xv.length / 2, 'most pixels have a gradient');
  clf.dispose();
});

test('PGD stays inside the epsilon ball and [0,1], and moves off the start', () => {
  const clf = tinyClassifier();
  const x = tf.randomUniform([8, 12, 12, 1], 0, 1, 'float32', 11) as Tensor4D;
  const y = tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32') as Tensor1D;
  const eps = 0.05;
  const adv = pgd((xi) => clf.logits(xi), x, y, { eps, steps: 7, seed: 3 });
  const d = tf.max(tf.abs(tf.sub(adv, x))).dataSync()[0]!;
  assert.ok(d <= eps + 1e-6, `linf ${d}`);
  assert.ok(tf.min(adv).dataSync()[0]! >= 0 && tf.max(adv).dataSync()[0]! <= 1);
  assert.ok(d > eps / 2, 'PGD actually moved');
  clf.dispose();
});

test('straight-through: gradients reach the input through the quantiser (BPDA path)', () => {
  const m = small(8, 8);
  const x = tf.randomUniform([2, 8, 8, 1], 0, 1, 'float32', 2) as Tensor4D;
  m.initCodebook(x, 1);
  const g = tf.grad((xi) => tf.sum(m.forward(xi as Tensor4D).recon))(x);
  assert.ok(tf.sum(tf.abs(g)).dataSync()[0]! > 0, 'non-zero gradient');
  m.dispose();
});

test('a bundle saved and loaded gives bit-identical outputs; a tampered bundle is refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vqg-bundle-'));
  const m = small(14, 14, 2);
  const x = tf.randomUniform([2, 14, 14, 1], 0, 1, 'float32', 4) as Tensor4D;
  m.initCodebook(x, 2);
  const meta = {
    name: 'test',
    dataset: { name: 'none', trainSize: 0, validationSize: 0, testSize: 0, seed: 0 },
    training: { command: 'test', seed: 3, epochs: 0, batchSize: 1, learningRate: 0, trainSeconds: 0, backend: 'x' },
    metrics: {},
  };
  saveBundle(dir, m, meta);
  const { model } = loadBundle<VqVae>(dir);
  assert.deepEqual(Array.from(model.reconstruct(x).dataSync()), Array.from(m.reconstruct(x).dataSync()));
  const w = readFileSync(join(dir, 'weights.bin'));
  w[100] = w[100]! ^ 1;
  writeFileSync(join(dir, 'weights.bin'), w);
  assert.throws(() => loadBundle(dir), (e: Error) => e instanceof BundleError && /sha256 mismatch/.test(e.message));
  assert.throws(() => loadBundle(join(dir, 'nope')), /not found/);
  m.dispose();
  model.dispose();
});

test('float16 conversion: half the bytes, weights within float16 rounding, sha256 still checked, idempotent', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vqg-f16-'));
  const m = small(14, 14, 2);
  const x = tf.randomUniform([2, 14, 14, 1], 0, 1, 'float32', 5) as Tensor4D;
  m.initCodebook(x, 2);
  saveBundle(dir, m, {
    name: 'test',
    dataset: { name: 'none', trainSize: 0, validationSize: 0, testSize: 0, seed: 0 },
    training: { command: 'test', seed: 3, epochs: 0, batchSize: 1, learningRate: 0, trainSeconds: 0, backend: 'x' },
    metrics: {},
  });
  const before = readFileSync(join(dir, 'weights.bin')).byteLength;
  const f32 = readManifest(dir).weightsSha256;
  const r = convertBundleToFloat16(dir, 'vqguard models convert --dtype float16 (test)')!;
  assert.equal(r.bytesAfter * 2, before);
  assert.equal(readFileSync(join(dir, 'weights.bin')).byteLength * 2, before);
  const man = readManifest(dir);
  assert.equal(man.weightsDtype, 'float16');
  assert.equal(man.conversion?.float32Sha256, f32);
  assert.notEqual(man.weightsSha256, f32);
  const { model } = loadBundle<VqVae>(dir);
  const a = m.params.snapshot(), b = model.params.snapshot();
  for (const [name, v] of a) {
    const w = b.get(name)!;
    v.forEach((y, i) => assert.ok(Math.abs(w[i]! - y) <= Math.abs(y) * 2 ** -11 + 2 ** -24, `${name}[${i}]: ${w[i]} vs ${y}`));
  }
  assert.equal(convertBundleToFloat16(dir, 'again'), null, 'a float16 bundle is left as it is');
  const buf = readFileSync(join(dir, 'weights.bin'));
  buf[10] = buf[10]! ^ 1;
  writeFileSync(join(dir, 'weights.bin'), buf);
  assert.throws(() => loadBundle(dir), (e: Error) => e instanceof BundleError && /sha256 mismatch/.test(e.message));
  m.dispose();
  model.dispose();
});

test('a tiny training run lowers the loss (purifier and classifier)', () => {
  const data = loadDataset('mnist');
  const small = { ...data, train: take(data.train, 256), validation: take(data.validation, 64), test: take(data.test, 64) };
  const r = trainPurifier(small, { seed: 1, epochs: 3, batchSize: 32, learningRate: 2e-3, split: 2, codebookSize: 32 });
  assert.equal(r.history.length, 3);
  assert.ok(r.history[2]!.reconMse < r.history[0]!.reconMse, `purifier mse ${r.history.map((h) => h.reconMse)}`);
  assert.ok(r.history[2]!.perplexity > 1.5, 'codebook did not collapse');
  r.model.dispose();
  const c = trainClassifier(small, { seed: 1, epochs: 3, batchSize: 32, learningRate: 2e-3, maxShift: 0, dropout: 0 });
  assert.ok(c.metrics.validationAccuracy > 0.3, `val acc ${c.metrics.validationAccuracy}`);
  c.model.dispose();
});

test('FGSM and PGD actually fool the shipped classifier (regression guard for the loss sign/smoothing)', async () => {
  const { ModelRegistry } = await import('../src/models/registry.ts');
  const { evaluateRobustness } = await import('../src/eval/robustness.ts');
  const reg = new ModelRegistry('models/mnist');
  const set = take(loadDataset('mnist').test, 200);
  const fg = evaluateRobustness(reg.classifier(), [], set, { attack: { name: 'fgsm' }, eps: [0, 0.3] });
  const clean = fg.find((r) => r.eps === 0)!.accuracy, at03 = fg.find((r) => r.eps === 0.3)!.accuracy;
  assert.ok(clean > 0.95, `clean ${clean}`);
  assert.ok(at03 < 0.5, `FGSM 0.3 should fool the undefended classifier: ${at03}`);
  const pg = evaluateRobustness(reg.classifier(), [], take(set, 100), { attack: { name: 'pgd', steps: 10 }, eps: [0.1] });
  const fg01 = evaluateRobustness(reg.classifier(), [], take(set, 100), { attack: { name: 'fgsm' }, eps: [0.1] });
  assert.ok(pg[0]!.accuracy <= fg01[0]!.accuracy, `PGD ${pg[0]!.accuracy} should be at least as strong as FGSM ${fg01[0]!.accuracy}`);
  reg.dispose();
});

test('cosine learning-rate schedule: starts at the base rate, halves mid-way, decays monotonically above 0', () => {
  assert.equal(cosineLr(1e-3, 1, 30), 1e-3);
  assert.ok(Math.abs(cosineLr(1e-3, 16, 30) - 0.5e-3) < 1e-12);
  let prev = Infinity;
  for (let e = 1; e <= 30; e++) {
    const lr = cosineLr(1e-3, e, 30);
    assert.ok(lr < prev && lr > 0, `epoch ${e}: ${lr}`);
    prev = lr;
  }
});

test('a model set refuses a dataset it was not trained on (clear error), unless allowed; shapes must always fit', async () => {
  const { ModelRegistry, checkModelsFitDataset, canonicalDataset } = await import('../src/models/registry.ts');
  const reg = new ModelRegistry('models/mnist');
  const shape = { height: 28, width: 28, channels: 1 };
  try {
    checkModelsFitDataset(reg, { name: 'mnist', test: shape });
    assert.throws(() => checkModelsFitDataset(reg, { name: 'idx:/data/fashion', test: shape }), /trained on 'mnist' but --dataset is 'idx:\/data\/fashion'.*--models/);
    checkModelsFitDataset(reg, { name: 'idx:/data/fashion', test: shape }, true);
    assert.throws(() => checkModelsFitDataset(reg, { name: 'mnist', test: { height: 32, width: 32, channels: 3 } }, true), /takes 28x28x1 images/);
  } finally {
    reg.dispose();
  }
  assert.equal(canonicalDataset('idx:/a/b/../c#balanced'), 'idx:/a/c#balanced');
  assert.equal(canonicalDataset(`idx:${process.cwd()}/d`), canonicalDataset('idx:d'));
  assert.equal(canonicalDataset(' mnist '), 'mnist');
});

test('shipped MNIST set meets the research-core bar: classifier and `full` >= .98 clean on the first 1,000 test images', async () => {
  const { ModelRegistry } = await import('../src/models/registry.ts');
  const { accuracy } = await import('../src/train/evaluate.ts');
  const reg = new ModelRegistry('models/mnist');
  try {
    const set = take(loadDataset('mnist').test, 1000);
    const full = reg.pipeline('full');
    const plain = accuracy(reg.classifier(), set);
    const purified = accuracy(reg.classifier(), set, (x) => full.apply(x));
    assert.ok(plain >= 0.98, `classifier ${plain}`);
    assert.ok(purified >= 0.98, `full ${purified}`);
  } finally {
    reg.dispose();
  }
});

const FASHION_DIR = '/usr/share/datasets/fashion-mnist';
// Optional: the transfer set is shipped, its dataset is a Debian package (dataset-fashion-mnist).
test('shipped Fashion-MNIST set loads, fits its dataset and reproduces its recorded test accuracy', {
  skip: !existsSync(`${FASHION_DIR}/t10k-images-idx3-ubyte.gz`) && `${FASHION_DIR} absent (apt-get install dataset-fashion-mnist)`,
}, async () => {
  const { ModelRegistry, checkModelsFitDataset } = await import('../src/models/registry.ts');
  const { accuracy } = await import('../src/train/evaluate.ts');
  const reg = new ModelRegistry('models/fashion-mnist');
  try {
    const data = loadDataset(`idx:${FASHION_DIR}`);
    checkModelsFitDataset(reg, data);
    const mnistSet = new ModelRegistry('models/mnist');
    assert.throws(() => checkModelsFitDataset(mnistSet, data), /trained on 'mnist'/);
    mnistSet.dispose();
    const m = reg.classifierManifest();
    assert.equal(m.dataset.trainSize, 7000);
    const acc = accuracy(reg.classifier(), data.test);
    assert.ok(Math.abs(acc - m.metrics.testAccuracy!) < 1e-9, `test accuracy ${acc} vs recorded ${m.metrics.testAccuracy}`);
    const set = take(data.test, 500);
    const chain = reg.pipeline('split2>full');
    const purified = accuracy(reg.classifier(), set, (x) => chain.apply(x));
    assert.ok(purified > 0.7, `split2>full on Fashion ${purified}`);
  } finally {
    reg.dispose();
  }
});
