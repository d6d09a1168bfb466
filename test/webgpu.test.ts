/**
 * The WebGPU backend (Dawn) against the native CPU backend, on whatever adapter this machine has:
 * Mesa's lavapipe on CPU machines (`make test` installs it: scripts/setup-webgpu.sh), a GPU
 * elsewhere. Lavapipe runs ~13 images/s, so the image set is small.
 *
 * Stated tolerances (measured on lavapipe: pixels 6.6e-7, scores 4.2e-6 relative, gradient 7e-8):
 * purified pixels within 1e-3 absolute, every
 * verdict (flagged or not, labels before/after) identical, scores within 1e-3 relative; gradient
 * of the classifier loss within 1e-4 absolute.
 *
 * VQGUARD_WEBGPU_TESTS=0 turns this file off explicitly (it says so); otherwise a machine without
 * a WebGPU adapter fails it with the reason.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import type { Tensor1D, Tensor4D } from '@tensorflow/tfjs-node';
import { tf, initBackend, backendInfo } from '../src/backend/tf.ts';
import { probeWebgpu } from '../src/backend/webgpu/load.ts';
import { measureBatchLimit, runChunked } from '../src/backend/webgpu/batch.ts';
import { ModelRegistry } from '../src/models/registry.ts';
import { Detector, type RawScores, type Verdict } from '../src/detect/detector.ts';
import { defaultCalibrationPath, loadCalibration } from '../src/detect/calibration.ts';
import { loadDataset } from '../src/data/load.ts';
import { take } from '../src/data/dataset.ts';
import { batchTensor } from '../src/train/evaluate.ts';

const OFF = process.env.VQGUARD_WEBGPU_TESTS === '0';
const MODELS = 'models/mnist';
const N = 24;
const PIPELINES = ['split2>full', 'full'];
const TOL = 1e-3;

interface Ref {
  raw: RawScores;
  verdicts: Verdict[];
}

const refs = new Map<string, Ref>();
let reg: ModelRegistry;
let x: Tensor4D;
let labels: Int32Array;
let gradRef: Float32Array;
let xNoisy: Tensor4D;

function detector(p: string): Detector {
  const cal = loadCalibration(defaultCalibrationPath(MODELS, [p]));
  return new Detector(reg.classifier(), [reg.pipeline(p)], { temperature: cal.temperature, tileGrid: cal.tileGrid }, cal);
}

function lossGrad(xx: Tensor4D): Float32Array | Promise<Float32Array> {
  const clf = reg.classifier();
  const y = tf.oneHot(tf.tensor1d(labels, 'int32') as Tensor1D, 10);
  const g = tf.grad((xi) => tf.losses.softmaxCrossEntropy(y, clf.logits(xi as Tensor4D)))(xx);
  return g.data() as Promise<Float32Array>;
}

before(async () => {
  if (OFF) return;
  const probe = await probeWebgpu();
  if (!probe.ok) throw new Error(`no WebGPU adapter on this machine: ${probe.reason} (VQGUARD_WEBGPU_TESTS=0 to turn these tests off)`);
  // CPU references first (the implicit native backend), then switch this process to WebGPU.
  reg = new ModelRegistry(MODELS);
  const set = take(loadDataset('mnist', { seed: 1234 }).test, N);
  labels = set.labels;
  x = batchTensor(set, 0, N);
  assert.equal(tf.getBackend(), 'tensorflow');
  for (const p of PIPELINES) {
    const det = detector(p);
    const raw = det.raw(x);
    refs.set(p, { raw, verdicts: det.verdicts(structuredClone(raw)) });
  }
  // Noise breaks the exact ties of flat backgrounds in max-pooling, where either backend may
  // route the subgradient to a different (equally valid) element.
  xNoisy = tf.add(x, tf.randomUniform(x.shape, 0, 0.05, 'float32', 7)) as Tensor4D;
  gradRef = await lossGrad(xNoisy);
  await initBackend('webgpu');
}, { timeout: 120_000 });

test('WebGPU: verdicts equal the CPU backend, outputs within tolerance', { skip: OFF && 'VQGUARD_WEBGPU_TESTS=0', timeout: 300_000 }, async (t) => {
  assert.equal(tf.getBackend(), 'webgpu');
  assert.equal(backendInfo.kind, 'webgpu');
  for (const p of PIPELINES) {
    const det = detector(p);
    const raw = await det.rawAsync(x);
    const ref = refs.get(p)!;
    let maxPx = 0;
    raw.purified.forEach((v, i) => (maxPx = Math.max(maxPx, Math.abs(v - ref.raw.purified[i]!))));
    assert.ok(maxPx < TOL, `${p}: purified pixels differ by ${maxPx}`);
    const v = det.verdicts(raw);
    let maxScore = 0;
    for (let i = 0; i < N; i++) for (const [k, sc] of Object.entries(ref.verdicts[i]!.scores)) maxScore = Math.max(maxScore, Math.abs(v[i]!.scores[k]! - sc) / Math.max(1, Math.abs(sc)));
    t.diagnostic(`${p}: max |pixel difference| ${maxPx.toExponential(2)}, max relative score difference ${maxScore.toExponential(2)}`);
    for (let i = 0; i < N; i++) {
      const a = v[i]!, b = ref.verdicts[i]!;
      assert.equal(a.flagged, b.flagged, `${p} image ${i}: verdict`);
      assert.equal(a.labelBefore, b.labelBefore, `${p} image ${i}: label before`);
      assert.equal(a.labelAfter, b.labelAfter, `${p} image ${i}: label after`);
      for (const [k, s] of Object.entries(b.scores)) {
        const d = Math.abs(a.scores[k]! - s);
        assert.ok(d <= TOL * Math.max(1, Math.abs(s)), `${p} image ${i} score ${k}: ${a.scores[k]} vs ${s}`);
      }
    }
    assert.ok(v.some((z) => z.labelBefore === labels[v.indexOf(z)]), 'the classifier works at all');
  }
});

test('WebGPU: the gradient through the classifier matches the CPU backend', { skip: OFF && 'VQGUARD_WEBGPU_TESTS=0', timeout: 120_000 }, async (t) => {
  const g = await lossGrad(xNoisy);
  let max = 0, norm = 0;
  g.forEach((v, i) => {
    max = Math.max(max, Math.abs(v - gradRef[i]!));
    norm = Math.max(norm, Math.abs(gradRef[i]!));
  });
  assert.ok(norm > 0, 'the reference gradient is not zero');
  t.diagnostic(`max |gradient difference| ${max.toExponential(2)} (max |g| ${norm.toExponential(2)})`);
  assert.ok(max < 1e-4, `gradient differs by ${max} (max |g| ${norm})`);
});

test('WebGPU: batches split by the device limits give the same outputs', { skip: OFF && 'VQGUARD_WEBGPU_TESTS=0', timeout: 300_000 }, async () => {
  const lim = backendInfo.adapter!.limits;
  const det = detector('full');
  const limit = await det.batchLimit(28, 28, 1);
  // The nearest-code distances of `full` are [N * 7*7, 900] floats: the limit can be no larger.
  const cfg = reg.purifier(1).config;
  const distBytes = 7 * 7 * cfg.codebookSize * 4;
  assert.ok(Number.isFinite(limit.maxBatch) && limit.maxBatch >= 1, `finite limit, got ${limit.maxBatch}`);
  assert.ok(limit.maxBatch <= Math.floor(lim.maxStorageBufferBindingSize / distBytes), `limit ${limit.maxBatch} (${limit.boundBy}) exceeds the distance matrix bound`);
  assert.match(limit.boundBy, /maxStorageBufferBindingSize|maxComputeWorkgroupsPerDimension/);
  // The same images through chunks of 5 equal one pass.
  const whole = await det.rawAsync(x);
  const parts = await runChunked(N, { maxBatch: 5, boundBy: 'test' }, async (s, c) => {
    const xi = tf.slice(x, [s, 0, 0, 0], [c, -1, -1, -1]) as Tensor4D;
    try {
      return await det.rawAsync(xi);
    } finally {
      xi.dispose();
    }
  });
  assert.equal(parts.length, Math.ceil(N / 5));
  const scores = parts.flatMap((p) => p.scores);
  scores.forEach((s, i) => assert.ok(Math.abs(s.recon! - whole.scores[i]!.recon!) < 1e-5, `image ${i}`));
  // A direct measurement on a toy forward: bytes grow 4*1000 per image, limit read from the device.
  const toy = await measureBatchLimit((n) => tf.add(tf.zeros([n, 1000]), tf.ones([n, 1000])));
  const expect = Math.floor(Math.min(lim.maxStorageBufferBindingSize, lim.maxBufferSize) / 4000);
  assert.ok(Math.abs(toy.maxBatch - expect) <= 1, `toy limit ${toy.maxBatch} vs ${expect}`);
});
