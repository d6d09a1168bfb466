// Purifiers and the built-in classifier for inputs larger than MNIST: the VQ-VAE keeps the paper's
// layout (2 stride-2 stages, 7x7 latent grid, the same parameter names) at 28x28 and adds stages
// for larger tiles so the latent grid stays at most 16 a side and the parameter count does not
// grow with the image; the classifier pools globally at 224x224 instead of a 99M-weight dense layer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Tensor4D } from '@tensorflow/tfjs-node';
import { tf } from '../src/backend/tf.ts';
import { VqVae } from '../src/purify/vqvae.ts';
import { defaultDownsamples, defaultVqVaeConfig, latentGrid } from '../src/purify/vqvaeConfig.ts';
import { tileSize } from '../src/purify/split.ts';
import { Classifier, defaultClassifierConfig } from '../src/detect/classifier.ts';
import { loadBundle, saveBundle } from '../src/models/bundle.ts';

/** Parameters excluding the codebook and its EMA statistics (those scale with K x D only). */
function weights(m: VqVae): number {
  return m.params.specs().filter((s) => !/^(codebook|ema\/)/.test(s.name)).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
}

const PAPER_NAMES = ['enc/conv1', 'enc/conv2', 'enc/res3', 'enc/res1', 'enc/pre', 'dec/post', 'dec/res1', 'dec/res3', 'dec/up1', 'dec/up2'];

test('VQ-VAE at 28x28x1: the paper layout, unchanged (2 stages, 7x7 latent, no downsamples key, same parameter names)', () => {
  const cfg = defaultVqVaeConfig({ height: 28, width: 28, channels: 1 });
  assert.equal('downsamples' in cfg, false, 'configs of 28x28 models stay as they were');
  assert.deepEqual(latentGrid(cfg), [7, 7]);
  const m = new VqVae(cfg, 1);
  assert.equal(m.downsamples, 2);
  const layers = [...new Set(m.params.specs().map((s) => s.name.replace(/\/(kernel|bias|w|b)$/, '')))].filter((n) => !/^(codebook|ema\/)/.test(n));
  assert.deepEqual(layers.sort(), [...PAPER_NAMES].sort());
  // A 14x14 split2 tile: 2 stages, a 4x4 grid (padded to 16).
  assert.deepEqual(latentGrid(defaultVqVaeConfig({ height: 14, width: 14, channels: 1, split: 2 })), [4, 4]);
  m.dispose();
});

test('VQ-VAE for 64x64x3 and 224x224x3: stride-2 stages, latent grid and a bounded parameter count', () => {
  const rows: { size: number; split: number; stages: number; grid: [number, number] }[] = [
    { size: 64, split: 1, stages: 2, grid: [16, 16] },
    { size: 64, split: 2, stages: 2, grid: [8, 8] },
    { size: 224, split: 1, stages: 4, grid: [14, 14] },
    { size: 224, split: 2, stages: 3, grid: [14, 14] },
  ];
  const base = weights(new VqVae(defaultVqVaeConfig({ height: 28, width: 28, channels: 3 }), 1));
  for (const r of rows) {
    const [th, tw] = tileSize(r.size, r.size, r.split);
    const cfg = defaultVqVaeConfig({ height: th, width: tw, channels: 3, split: r.split });
    const what = `${r.size}x${r.size}x3 split${r.split} (tile ${th}x${tw})`;
    assert.equal(defaultDownsamples(th, tw), r.stages, what);
    assert.deepEqual(latentGrid(cfg), r.grid, what);
    const m = new VqVae(cfg, 1);
    // Each extra stage adds one conv 4x4 (F->F) and one convT 2x2 (F->F): 16F^2 + 4F^2 + 2F weights.
    const f = cfg.filters;
    assert.equal(weights(m), base + (r.stages - 2) * (20 * f * f + 2 * f), what);
    assert.ok(weights(m) < 2_000_000, `${what}: ${weights(m)} weights`);
    m.dispose();
  }
  // An explicit option overrides the default; the latent grid follows; out of range is refused.
  assert.deepEqual(latentGrid(defaultVqVaeConfig({ height: 64, width: 64, channels: 3, downsamples: 3 })), [8, 8]);
  assert.throws(() => defaultVqVaeConfig({ height: 64, width: 64, channels: 3, downsamples: 1 }), /downsamples must be an integer from 2 to 5/);
});

test('VQ-VAE at 224x224x3: the encoder gives the 14x14 latent grid, the reconstruction is 224x224x3; odd sizes crop back', () => {
  const m = new VqVae(defaultVqVaeConfig({ height: 224, width: 224, channels: 3, filters: 16, embeddingDim: 8, codebookSize: 32 }), 2);
  assert.equal(m.downsamples, 4);
  const x = tf.randomUniform([1, 224, 224, 3], 0, 1, 'float32', 1) as Tensor4D;
  const z = tf.tidy(() => m.encode(m.pad(x).xp));
  assert.deepEqual(z.shape, [1, 14, 14, 8]);
  const y = m.reconstruct(x);
  assert.deepEqual(y.shape, [1, 224, 224, 3]);
  tf.dispose([x, z, y]);
  // 100x75 pads to multiples of 16 (112x80) and crops back.
  const odd = tf.randomUniform([2, 100, 75, 3], 0, 1, 'float32', 3) as Tensor4D;
  const yo = m.reconstruct(odd);
  assert.deepEqual(yo.shape, [2, 100, 75, 3]);
  assert.ok(yo.dataSync().every((v) => v >= 0 && v <= 1));
  tf.dispose([odd, yo]);
  // Saved and loaded: the stage count travels in the bundle's config, the output is the same.
  const dir = join(mkdtempSync(join(tmpdir(), 'vqguard-scaling-')), 'purifier');
  saveBundle(dir, m, {
    name: 'purifier-split1',
    dataset: { name: 'none', trainSize: 0, validationSize: 0, testSize: 0, seed: 0 },
    training: { command: 'test', seed: 2, epochs: 0, batchSize: 1, learningRate: 0, trainSeconds: 0, backend: 'x' },
    metrics: {},
  });
  const back = loadBundle<VqVae>(dir).model;
  assert.equal(back.downsamples, 4);
  const x2 = tf.randomUniform([1, 224, 224, 3], 0, 1, 'float32', 4) as Tensor4D;
  const a = m.reconstruct(x2), b = back.reconstruct(x2);
  assert.ok(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]! < 1e-6);
  tf.dispose([x2, a, b]);
  m.dispose();
  back.dispose();
});

test('the built-in classifier at 224x224x3 pools globally: no dense layer that grows with the image', () => {
  const small = new Classifier(defaultClassifierConfig({ height: 28, width: 28, channels: 1, classes: 10 }), 1);
  assert.equal(small.config.pool, undefined, '28x28 keeps the flatten layout of the shipped models');
  const big = new Classifier(defaultClassifierConfig({ height: 224, width: 224, channels: 3, classes: 10 }), 1);
  assert.equal(big.config.pool, 'global');
  const fc1 = big.params.specs().filter((s) => s.name.startsWith('fc1'));
  const fc1Weights = fc1.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
  assert.equal(fc1Weights, 64 * 128 + 128, 'fc1: conv2 channels x hidden (+ bias)');
  assert.ok(big.params.count() < 100_000, `${big.params.count()} parameters`);
  const x = tf.zeros([1, 224, 224, 3]) as Tensor4D;
  const y = big.logits(x);
  assert.deepEqual(y.shape, [1, 10]);
  tf.dispose([x, y]);
  small.dispose();
  big.dispose();
});
