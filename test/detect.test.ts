import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsDivergence, jsFromLogits, l1Distance, labelFlip, reconError, worstTileError, baseScores, softmax } from '../src/detect/scores.ts';
import { thresholdForFpr, fitCombiner, combinedScore } from '../src/detect/combine.ts';
import { calibrate, loadCalibration } from '../src/detect/calibration.ts';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rocAuc, rateAbove } from '../src/eval/roc.ts';
import { mulberry32 } from '../src/data/dataset.ts';

test('identical outputs score 0 on every score', () => {
  const z = [2, -1, 0.5, 3];
  const img = [0.1, 0.5, 0.9, 0.2];
  const s = baseScores({ image: img, purified: img, logitsBefore: z, logitsAfter: z, height: 2, width: 2, channels: 1, tileGrid: 2, temperature: 10 });
  assert.deepEqual(s, { labelFlip: 0, l1: 0, js: 0, recon: 0, reconWorstTile: 0 });
});

test('a label flip is caught', () => {
  assert.equal(labelFlip([0.9, 0.1], [0.2, 0.8]), 1);
  assert.equal(labelFlip([0.6, 0.4], [0.55, 0.45]), 0);
  const s = baseScores({ image: [0], purified: [0], logitsBefore: [5, 0], logitsAfter: [0, 5], height: 1, width: 1, channels: 1, tileGrid: 1, temperature: 1 });
  assert.equal(s.labelFlip, 1);
  assert.ok(s.l1 > 1.9 && s.l1 <= 2, `l1 ${s.l1}`);
});

test('JS divergence is symmetric, non-negative and bounded by log 2', () => {
  const rng = mulberry32(3);
  for (let i = 0; i < 200; i++) {
    const a = Array.from({ length: 10 }, () => rng() * 10 - 5);
    const b = Array.from({ length: 10 }, () => rng() * 10 - 5);
    const t = 0.5 + rng() * 20;
    const ab = jsFromLogits(a, b, t), ba = jsFromLogits(b, a, t);
    assert.ok(Math.abs(ab - ba) < 1e-12, 'symmetric');
    assert.ok(ab >= 0 && ab <= Math.LN2 + 1e-12, `bounded: ${ab}`);
  }
  // Disjoint one-hot distributions reach the bound.
  assert.ok(Math.abs(jsDivergence([1, 0], [0, 1]) - Math.LN2) < 1e-12);
  // Higher temperature brings distributions closer.
  assert.ok(jsFromLogits([8, 0], [0, 8], 40) < jsFromLogits([8, 0], [0, 8], 1));
});

test('L1, reconstruction and worst-tile errors on constructed cases', () => {
  assert.equal(l1Distance([0.5, 0.5], [1, 0]), 1);
  assert.equal(reconError([0, 0, 0, 0], [1, 0, 0, 0]), 0.25);
  // 4x4 image, error only in the bottom-right 2x2 tile.
  const x = new Array(16).fill(0);
  const p = x.slice();
  p[10] = 1; p[11] = 1; p[14] = 1; p[15] = 1;
  assert.equal(worstTileError(x, p, 4, 4, 1, 2), 1);
  assert.equal(reconError(x, p), 0.25);
  const sm = softmax([1, 2, 3]);
  assert.ok(Math.abs(sm.reduce((a, b) => a + b, 0) - 1) < 1e-12);
});

test('thresholdForFpr flags at most the given share of clean values', () => {
  const rng = mulberry32(9);
  const v = Array.from({ length: 1000 }, () => rng());
  for (const fpr of [0, 0.01, 0.05, 0.2]) {
    const t = thresholdForFpr(v, fpr);
    assert.ok(rateAbove(v, t) <= fpr + 1e-12, `fpr ${fpr}: ${rateAbove(v, t)}`);
    assert.ok(rateAbove(v, t) >= fpr - 0.002, 'not needlessly strict');
  }
  // Ties: a constant score can never be flagged.
  assert.equal(rateAbove([1, 1, 1, 1], thresholdForFpr([1, 1, 1, 1], 0.25)), 0);
});

test('ROC-AUC: perfect, inverted, random and tied cases', () => {
  assert.equal(rocAuc([0, 1, 2], [3, 4]), 1);
  assert.equal(rocAuc([3, 4], [0, 1, 2]), 0);
  assert.equal(rocAuc([1, 1], [1, 1]), 0.5);
  const rng = mulberry32(1);
  const a = Array.from({ length: 2000 }, () => rng()), b = Array.from({ length: 2000 }, () => rng());
  assert.ok(Math.abs(rocAuc(a, b) - 0.5) < 0.03);
});

// Synthetic scores: clean recon ~ lognormal(-6, 0.3), attacked shifted up.
function synth(rng: () => number, n: number, shift: number) {
  const g = () => Math.sqrt(-2 * Math.log(rng() + 1e-12)) * Math.cos(2 * Math.PI * rng());
  return Array.from({ length: n }, () => ({ labelFlip: rng() < (shift ? 0.3 : 0.01) ? 1 : 0, l1: Math.exp(-6 + g() + shift), js: Math.exp(-8 + g() + shift), recon: Math.exp(-6 + 0.3 * g() + shift), reconWorstTile: Math.exp(-5 + 0.3 * g() + shift) }));
}

test('the learned combined score separates attacked from clean and calibration meets its FPR on fresh clean data', () => {
  const rng = mulberry32(21);
  const keys = ['labelFlip', 'l1', 'js', 'recon', 'reconWorstTile'];
  const clean = synth(rng, 2000, 0);
  const attacked = synth(rng, 1000, 1.5);
  const cal = calibrate(clean, attacked, keys, [0.01, 0.05], { pipelines: ['x'], temperature: 10, tileGrid: 2, dataset: 'synthetic', modelVersions: {}, command: 'test' });
  // Fresh clean and attacked data.
  const fresh = synth(rng, 5000, 0).map((s) => combinedScore(s, cal.combiner));
  const pos = synth(rng, 1000, 1.5).map((s) => combinedScore(s, cal.combiner));
  const fpr = rateAbove(fresh, cal.thresholds.combined!);
  // Binomial standard error at n=1000 threshold samples is about 0.003; allow 3 sigma.
  assert.ok(fpr <= 0.01 + 0.01, `fresh FPR ${fpr}`);
  assert.ok(rocAuc(fresh, pos) > 0.95, `AUC ${rocAuc(fresh, pos)}`);
  // The combination is at least as good as its best input here (recon).
  const reconAuc = rocAuc(synth(rng, 2000, 0).map((s) => s.recon), synth(rng, 1000, 1.5).map((s) => s.recon));
  assert.ok(rocAuc(fresh, pos) >= reconAuc - 0.01, `combined ${rocAuc(fresh, pos)} vs recon ${reconAuc}`);
});

test('fitCombiner gives a positive weight to an informative feature', () => {
  const rng = mulberry32(5);
  const neg = Array.from({ length: 300 }, () => ({ a: Math.exp(rng()), b: Math.exp(rng()) }));
  const pos = Array.from({ length: 300 }, () => ({ a: Math.exp(rng() + 2), b: Math.exp(rng()) }));
  const c = fitCombiner(['a', 'b'], neg, pos);
  assert.ok(c.weights[0]! > 1, `weight a ${c.weights[0]}`);
  assert.ok(Math.abs(c.weights[1]!) < c.weights[0]! / 3, `weight b ${c.weights[1]}`);
});

test('the shipped calibration holds its 1% FPR on fresh clean test images (within sampling error)', async () => {
  const { ModelRegistry } = await import('../src/models/registry.ts');
  const { Detector } = await import('../src/detect/detector.ts');
  const { loadCalibration } = await import('../src/detect/calibration.ts');
  const { loadDataset } = await import('../src/data/load.ts');
  const { take } = await import('../src/data/dataset.ts');
  const { batchTensor } = await import('../src/train/evaluate.ts');
  const cal = loadCalibration('models/mnist/calibration/split2-full.json');
  const reg = new ModelRegistry('models/mnist');
  const det = new Detector(reg.classifier(), [reg.pipeline('split2>full')], { temperature: cal.temperature, tileGrid: cal.tileGrid }, cal);
  const set = take(loadDataset('mnist').test, 1000);
  let flagged = 0;
  for (let s = 0; s < set.n; s += 250) {
    const x = batchTensor(set, s, Math.min(set.n, s + 250));
    flagged += det.verdicts(det.raw(x)).filter((v) => v.flagged).length;
    x.dispose();
  }
  const fpr = flagged / set.n;
  // Target 0.01; binomial standard error at n = 1000 is about 0.003: allow 3 sigma.
  assert.ok(fpr <= 0.01 + 3 * Math.sqrt((0.01 * 0.99) / set.n), `clean test FPR ${fpr}`);
  reg.dispose();
});

test('calibration files are schema-checked: every shipped one loads, a malformed one is named', () => {
  for (const set of ['models/mnist']) {
    for (const f of readdirSync(join(set, 'calibration'))) assert.ok(loadCalibration(join(set, 'calibration', f)).thresholds.combined !== undefined, f);
  }
  const good = JSON.parse(readFileSync('models/mnist/calibration/full.json', 'utf8')) as Record<string, unknown>;
  const dir = mkdtempSync(join(tmpdir(), 'vqguard-cal-'));
  const write = (c: unknown) => {
    const f = join(dir, 'c.json');
    writeFileSync(f, JSON.stringify(c));
    return f;
  };
  assert.throws(() => loadCalibration(write({ ...good, temperature: 'hot' })), /calibration file .*c\.json: temperature: Expected number, received string/);
  assert.throws(() => loadCalibration(write({ ...good, thresholds: { l1: 0.5 } })), /thresholds: no combined threshold/);
  assert.throws(() => loadCalibration(write({ ...good, format: 'x' })), /unsupported format "x"/);
  assert.throws(() => loadCalibration(join(dir, 'c.json') + 'x'), /does not exist/);
});

test('reconstruction errors reduced as tensor ops (the WebGPU path) equal the per-image JS ones, any size and grid', async () => {
  const { tf } = await import('../src/backend/tf.ts');
  const { reconErrorsTensor } = await import('../src/detect/detector.ts');
  const rnd = mulberry32(5);
  for (const [n, h, w, c, k] of [[3, 28, 28, 1, 2], [2, 28, 28, 1, 3], [2, 5, 7, 3, 4], [1, 24, 24, 3, 4], [2, 9, 4, 1, 2]] as const) {
    const size = h * w * c;
    const x = Float32Array.from({ length: n * size }, () => rnd());
    const px = Float32Array.from({ length: n * size }, () => rnd());
    const got = tf.tidy(() => reconErrorsTensor(tf.tensor4d(x, [n, h, w, c]), tf.tensor4d(px, [n, h, w, c]), k).arraySync());
    for (let i = 0; i < n; i++) {
      const a = x.subarray(i * size, (i + 1) * size), b = px.subarray(i * size, (i + 1) * size);
      const want = [reconError(a, b), worstTileError(a, b, h, w, c, k)];
      for (let j = 0; j < 2; j++) assert.ok(Math.abs(got[i]![j]! - want[j]!) < 1e-5, `${n}x${h}x${w}x${c} k=${k} image ${i} score ${j}: ${got[i]![j]} vs ${want[j]}`);
    }
  }
});
