// BPDA through every registered stage, and the strong attack (restarts, any-step success,
// worst case over attack paths, EOT). Real shipped models, small sizes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Tensor2D, Tensor4D } from '@tensorflow/tfjs-node';
import { tf } from '../src/backend/tf.ts';
import { ModelRegistry } from '../src/models/registry.ts';
import { parseStage, stageKinds } from '../src/purify/stages/index.ts';
import { MODELS, REPO } from './helpers/guard.ts';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LogitsFn } from '../src/attacks/attacks.ts';
import { strongPgd, worstCase } from '../src/attacks/strong.ts';
import { evaluateRobustness } from '../src/eval/robustness.ts';
import { loadDataset } from '../src/data/load.ts';
import { take } from '../src/data/dataset.ts';
import { Detector } from '../src/detect/detector.ts';
import { loadCalibration } from '../src/detect/calibration.ts';
import { detectorAwarePgd, surrogate } from '../src/attacks/detectorAware.ts';

describe('BPDA: every registered stage passes a gradient', { timeout: 120_000 }, () => {
  test('non-zero input gradient through every example of every stage kind, forward value unchanged', () => {
    const reg = new ModelRegistry(MODELS);
    try {
      // A digit-like input: a bright bar on a dark ground, plus mid-grey noise so rounding matters.
      const x = tf.tidy(() => {
        const bar = tf.buffer([1, 28, 28, 1]);
        for (let y = 6; y < 22; y++) for (let c = 12; c < 16; c++) bar.set(0.9, 0, y, c, 0);
        return tf.clipByValue(tf.add(bar.toTensor(), tf.randomUniform([1, 28, 28, 1], 0, 0.3, 'float32', 7)), 0, 1) as Tensor4D;
      });
      const weights = tf.randomNormal([1, 28, 28, 1], 0, 1, 'float32', 3);
      let checked = 0;
      for (const kind of stageKinds()) {
        assert.ok(kind.examples.length > 0, `stage kind ${kind.kind} declares no examples`);
        assert.ok(['exact', 'straight-through', 'identity'].includes(kind.bpda), `stage kind ${kind.kind}: bpda ${kind.bpda}`);
        for (const name of kind.examples) {
          const stage = reg.pipeline(name).stages[0]!;
          assert.equal(parseStage(name).kind, kind);
          const g = tf.tidy(() => tf.grad((xi) => tf.sum(tf.mul(stage.apply(xi as Tensor4D), weights)))(x));
          const norm = tf.tidy(() => tf.sum(tf.abs(g)).dataSync()[0]!);
          const finite = tf.tidy(() => tf.all(tf.isFinite(g)).dataSync()[0]!);
          g.dispose();
          assert.equal(finite, 1, `${name}: gradient not finite`);
          assert.ok(norm > 1e-3, `${name} (${stage.bpda}): input gradient is ${norm}, expected non-zero`);
          checked++;
        }
      }
      assert.ok(checked >= 7, `checked ${checked} stages`);
      tf.dispose([x, weights]);
    } finally {
      reg.dispose();
    }
  });

  test('bits1: forward is exact rounding, backward is straight-through (the old tf.round gradient was zero)', () => {
    const reg = new ModelRegistry(MODELS);
    try {
      const stage = reg.pipeline('bits1').stages[0]!;
      assert.equal(stage.bpda, 'straight-through');
      const x = tf.tensor4d([0.2, 0.49, 0.51, 0.9], [1, 2, 2, 1]);
      const y = stage.apply(x);
      assert.deepEqual(Array.from(y.dataSync()), [0, 0, 1, 1]);
      const g = tf.grad((xi) => tf.sum(tf.mul(stage.apply(xi as Tensor4D), tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]))))(x);
      assert.deepEqual(Array.from(g.dataSync()), [1, 2, 3, 4]);
      const zero = tf.grad((xi) => tf.sum(tf.round(xi)))(x);
      assert.deepEqual(Array.from(zero.dataSync()), [0, 0, 0, 0], 'tf.round itself has a zero gradient');
      tf.dispose([x, y, g, zero]);
    } finally {
      reg.dispose();
    }
  });
});

describe('stochastic quantisation (full-T<t>) and bits1>full under BPDA', { timeout: 120_000 }, () => {
  test('full-T0.03 is random, declares it, and passes a non-zero straight-through gradient; bits1>full too', () => {
    const reg = new ModelRegistry(MODELS);
    try {
      const set = take(loadDataset('mnist', { seed: 1234 }).test, 4);
      const x = tf.tensor4d(set.images, [4, 28, 28, 1]) as Tensor4D;
      const weights = tf.randomNormal([4, 28, 28, 1], 0, 1, 'float32', 3);
      const sampled = reg.pipeline('full-T0.03');
      assert.equal(sampled.stages[0]!.random, true);
      assert.equal(sampled.stages[0]!.bpda, 'straight-through');
      assert.equal(reg.pipeline('full').stages[0]!.random, undefined, 'the nearest-code stage stays deterministic');
      const a = sampled.apply(x), b = sampled.apply(x);
      const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
      assert.ok(diff > 1e-3, `two draws differ (max |a-b| = ${diff})`);
      // A tiny temperature is the nearest code.
      const cold = reg.pipeline('full-T0.000001').apply(x), near = reg.pipeline('full').apply(x);
      const coldDiff = tf.tidy(() => tf.max(tf.abs(tf.sub(cold, near))).dataSync()[0]!);
      assert.ok(coldDiff < 1e-4, `T -> 0 equals nearest-code quantisation (max diff ${coldDiff})`);
      for (const spec of ['full-T0.03', 'bits1>full', 'bits1>full-T0.03']) {
        const p = reg.pipeline(spec);
        const g = tf.tidy(() => tf.grad((xi) => tf.sum(tf.mul(p.apply(xi as Tensor4D), weights)))(x));
        const norm = tf.tidy(() => tf.sum(tf.abs(g)).dataSync()[0]!);
        g.dispose();
        assert.ok(norm > 1e-3, `${spec}: input gradient ${norm}, expected non-zero`);
      }
      assert.throws(() => reg.pipeline('full-T0'), /full-T/);
      tf.dispose([x, weights, a, b, cold, near]);
    } finally {
      reg.dispose();
    }
  });

  test('worst case --paths: only the named attack paths run (a budget cut), an empty choice is an error', async () => {
    const { worstCaseCell } = await import('../src/eval/worstCase.ts');
    const reg = new ModelRegistry(MODELS);
    try {
      const set = take(loadDataset('mnist', { seed: 1234 }).test, 3);
      const cell = worstCaseCell(reg.classifier(), reg.pipeline('bits1>full'), null, set, 0.3, { steps: 3, restarts: 1, paths: ['bpda'] });
      assert.deepEqual(Object.keys(cell.brokenBy), ['bpda']);
      assert.ok(cell.gradientSteps <= 3 * 3);
      const all = worstCaseCell(reg.classifier(), reg.pipeline('bits1'), null, set, 0.3, { steps: 1, restarts: 1 });
      assert.deepEqual(Object.keys(all.brokenBy), ['bpda', 'bpda-identity', 'pgd']);
      assert.throws(() => worstCaseCell(reg.classifier(), reg.pipeline('bits1'), null, set, 0.3, { steps: 1, restarts: 1, paths: ['nope'] }), /no attack path left/);
    } finally {
      reg.dispose();
    }
  });

  test('a random defence counts as broken only when most of the eot draws misclassify', () => {
    // Toy random classifier: wrong (class 1) with probability p, whatever the input.
    const coin = (p: number): LogitsFn => (x) => tf.tidy(() => {
      const u = tf.randomUniform([x.shape[0]], 0, 1);
      const wrong = tf.add(tf.cast(tf.less(u, p), 'float32'), tf.mul(tf.mean(x, [1, 2, 3]), 0)); // x enters with zero weight
      return tf.stack([tf.sub(1, wrong), wrong], 1) as Tensor2D;
    });
    const x = tf.fill([3, 4, 4, 1], 0.5) as Tensor4D;
    const rare = strongPgd({ name: 'rare', grad: coin(0.1), random: true }, x, new Int32Array(3), { eps: 0.1, steps: 5, restarts: 1, eot: 20 });
    assert.deepEqual(Array.from(rare.success), [0, 0, 0], 'one wrong draw in ten is not a break');
    const often = strongPgd({ name: 'often', grad: coin(0.9), random: true }, x, new Int32Array(3), { eps: 0.1, steps: 5, restarts: 1, eot: 20 });
    assert.deepEqual(Array.from(often.success), [1, 1, 1]);
    x.dispose();
  });
});

describe('strong PGD: restarts, any-step success, worst case, EOT', { timeout: 120_000 }, () => {
  // Toy two-class model on the image mean s: class 1 wins when s > 0.55 (label 0 is correct).
  const toy: LogitsFn = (x) => tf.tidy(() => {
    const s = tf.mean(x, [1, 2, 3]);
    return tf.stack([tf.sub(0.55, s), tf.sub(s, 0.55)], 1) as Tensor2D;
  });
  // A model no L-inf step can move: constant logits (zero gradient).
  const wall: LogitsFn = (x) => tf.tidy(() => tf.add(tf.mul(tf.sum(x, [1, 2, 3], true).reshape([-1, 1]), 0), tf.tensor2d([[5, -5]])) as Tensor2D);
  const grey = (n: number) => tf.fill([n, 4, 4, 1], 0.5) as Tensor4D;

  test('an image stops at its first success: the adversarial is just past the boundary, budget not spent', () => {
    const x = grey(3);
    const r = strongPgd({ name: 'toy', grad: toy }, x, new Int32Array(3), { eps: 0.3, steps: 100, restarts: 5, seed: 1 });
    assert.deepEqual(Array.from(r.success), [1, 1, 1]);
    for (let i = 0; i < 3; i++) {
      const img = r.adv.subarray(i * 16, (i + 1) * 16);
      const mean = img.reduce((a, v) => a + v, 0) / 16;
      assert.ok(mean > 0.55 && mean < 0.6, `image ${i}: mean ${mean} should be just past 0.55 (first success), not at the eps edge`);
      assert.ok(img.every((v) => v >= 0.2 - 1e-6 && v <= 0.8 + 1e-6), 'inside the eps-ball');
    }
    assert.ok(r.gradientSteps < 3 * 100, `spent ${r.gradientSteps} steps`);
    x.dispose();
  });

  test('robust images pay the full budget: steps x restarts, and stay unbroken', () => {
    const x = grey(2);
    const r = strongPgd({ name: 'wall', grad: wall }, x, new Int32Array(2), { eps: 0.3, steps: 7, restarts: 3 });
    assert.deepEqual(Array.from(r.success), [0, 0]);
    assert.equal(r.gradientSteps, 2 * 7 * 3);
    x.dispose();
  });

  test('worst case: later paths attack only survivors; brokenBy names the path', () => {
    const x = grey(2);
    const r = worstCase([{ name: 'wall', grad: wall, judge: toy }, { name: 'toy', grad: toy }], x, new Int32Array(2), { eps: 0.3, steps: 20, restarts: 2 });
    assert.deepEqual(Array.from(r.brokenBy), [1, 1]);
    assert.deepEqual(r.perPath.map((p) => [p.name, p.broken]), [['wall', 0], ['toy', 2]]);
    assert.equal(r.perPath[0]!.gradientSteps, 2 * 20 * 2);
    x.dispose();
  });

  test('EOT: a random path averages the gradient over eot samples per step', () => {
    const x = grey(1);
    let calls = 0;
    const noisy: LogitsFn = (xi) => {
      calls++;
      return wall(xi);
    };
    const r = strongPgd({ name: 'noisy', grad: noisy, judge: wall, random: true }, x, new Int32Array(1), { eps: 0.1, steps: 3, restarts: 2, eot: 20 });
    assert.equal(r.gradientSteps, 3 * 2 * 20);
    assert.equal(calls, 3 * 2 * 20);
    x.dispose();
  });

  test('bits1 under BPDA (straight-through) is no longer perfectly robust at eps 0.3', () => {
    const reg = new ModelRegistry(MODELS);
    try {
      const data = loadDataset('mnist', { seed: 1234 });
      const set = take(data.test, 20);
      const rows = evaluateRobustness(reg.classifier(), [reg.pipeline('bits1')], set, { attack: { name: 'bpda', steps: 20 }, eps: [0.3] });
      const bits = rows.find((r) => r.pipeline === 'bits1')!;
      assert.ok(bits.accuracy < 0.9, `bits1 BPDA accuracy at 0.3 is ${bits.accuracy}; the zero-gradient bug reported 1.00`);
    } finally {
      reg.dispose();
    }
  });
});

describe('detector-aware attack (C&W-style, BPDA through the purifier)', { timeout: 240_000 }, () => {
  test('the TF surrogate equals the detector\'s combined score; evading examples are checked by the real detector', () => {
    const reg = new ModelRegistry(MODELS);
    try {
      const cal = loadCalibration(`${MODELS}/calibration/full.json`);
      const det = new Detector(reg.classifier(), cal.pipelines.map((p) => reg.pipeline(p)), { temperature: cal.temperature, tileGrid: cal.tileGrid }, cal);
      const set = take(loadDataset('mnist', { seed: 1234 }).test, 8);
      const x = tf.tensor4d(set.images, [8, 28, 28, 1]) as Tensor4D;
      // Scores on clean and on noisy inputs (so labelFlip and the tails are exercised). Float32 in
      // TF vs float64 in the detector: log(l1) of near-equal softmaxes differs by ~0.01 on clean digits.
      const noisy = tf.tidy(() => tf.clipByValue(tf.add(x, tf.randomUniform(x.shape, -0.3, 0.3, 'float32', 5)), 0, 1) as Tensor4D);
      for (const t of [x, noisy]) {
        const want = det.withCombined(det.raw(t)).scores.map((s) => s.combined!);
        const got = tf.tidy(() => Array.from(surrogate(det, cal, t, 'purified').combined.dataSync()));
        got.forEach((v, i) => assert.ok(Math.abs(v - want[i]!) < 0.05, `image ${i}: surrogate ${v} vs detector ${want[i]}`));
      }
      const r = detectorAwarePgd(det, x, set.labels, { eps: 0.3, steps: 20, restarts: 1, lambda: 1, mode: 'purified' });
      const evaded = Array.from(r.evaded).reduce((a, v) => a + v, 0);
      assert.ok(evaded >= 1, 'at eps 0.3 the adaptive attack should evade the guard on some images');
      const advT = tf.tensor4d(r.adv, [8, 28, 28, 1]);
      const verdicts = det.verdicts(det.raw(advT));
      const shift = tf.tidy(() => tf.max(tf.abs(tf.sub(advT, x))).dataSync()[0]!);
      assert.ok(shift <= 0.3 + 1e-5, `perturbation ${shift} exceeds eps`);
      verdicts.forEach((v, i) => {
        if (!r.evaded[i]) return;
        assert.equal(v.flagged, false, `image ${i} counted as evading but the detector flags it`);
        assert.notEqual(v.labelAfter, set.labels[i], `image ${i} counted as evading but is classified correctly`);
      });
      tf.dispose([x, noisy, advT]);
    } finally {
      reg.dispose();
    }
  });
});

describe('worst-case and adaptive commands write their reports', { timeout: 300_000 }, () => {
  test('tiny runs: JSON cells, guard success >= accuracy, Markdown with images x steps x restarts', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vqguard-wc-'));
    try {
      const run = (args: string[]) => execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      run(['worst-case', '--samples', '6', '--steps', '3', '--restarts', '2', '--eps', '0,0.3', '--pipelines', 'undefended,full', '--report', dir, '--name', 'wc']);
      const wc = JSON.parse(readFileSync(join(dir, 'wc.json'), 'utf8')) as { cells: { pipeline: string; eps: number; accuracy: number; guardSuccess: number; detector: string | null; steps: number; restarts: number; brokenBy: Record<string, number> }[] };
      assert.equal(wc.cells.length, 4);
      for (const c of wc.cells) {
        assert.ok(c.guardSuccess >= c.accuracy, `${c.pipeline}@${c.eps}: guard ${c.guardSuccess} < accuracy ${c.accuracy}`);
        assert.equal(c.steps, 3);
        assert.equal(c.restarts, 2);
      }
      const full = wc.cells.find((c) => c.pipeline === 'full' && c.eps === 0.3)!;
      assert.equal(full.detector, 'full', 'the shipped calibration for full is picked up');
      assert.deepEqual(Object.keys(full.brokenBy), ['bpda', 'bpda-identity', 'pgd']);
      assert.match(readFileSync(join(dir, 'wc.md'), 'utf8'), /6 x 3 x 2/);
      run(['adaptive', '--samples', '4', '--steps', '3', '--eps', '0.3', '--lambdas', '0.1,10', '--mode', 'purified,original', '--pipelines', 'full', '--report', dir, '--name', 'ad']);
      const ad = JSON.parse(readFileSync(join(dir, 'ad.json'), 'utf8')) as { cells: { mode: string; lambda: number | string; evaded: number }[] };
      assert.equal(ad.cells.length, 6, 'two lambdas and the worst, for each mode');
      for (const mode of ['purified', 'original']) {
        const cs = ad.cells.filter((c) => c.mode === mode);
        const worst = cs.find((c) => c.lambda === 'worst')!;
        assert.ok(cs.every((c) => c.evaded <= worst.evaded), 'the worst over lambda evades at least as often as each lambda');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
