/**
 * The detector-aware attack (Carlini & Wagner 2017, "Adversarial examples are not easily
 * detected"): PGD on
 *     maximise  -max(margin(x), -kappa) - lambda * combined(x)
 * where margin = z_y - max_{k != y} z_k of the logits the guard's consumer acts on (after
 * purification, or of the original image in forward-original mode), and combined(x) is the
 * detector's calibrated logistic score computed in TF.js (so it is differentiable): every
 * base score (l1, js, recon, reconWorstTile) of every detector pipeline, log-scaled and
 * standardised exactly as src/detect/combine.ts does; the 0/1 label flip enters at its exact
 * value without a gradient. Purifiers pass gradients with their declared BPDA backward.
 * Success = misclassified AND not flagged (combined <= the calibrated 1% FPR threshold),
 * counted at any step; R random restarts.
 */
import { tf } from '../backend/tf.ts';
import type { Scalar, Tensor, Tensor1D, Tensor2D, Tensor4D } from '@tensorflow/tfjs-node';
import type { Detector } from '../detect/detector.ts';
import type { Calibration } from '../detect/calibration.ts';
import { scoreKey } from '../detect/detector.ts';

export type GuardMode = 'purified' | 'original';

export interface Surrogate {
  /** Logits the consumer acts on. */
  logits: Tensor2D;
  /** Combined detection score per image (a logit; flagged when > threshold). */
  combined: Tensor1D;
}

function jsDivergenceRows(p: Tensor2D, q: Tensor2D): Tensor1D {
  const e = 1e-12;
  const m = tf.div(tf.add(p, q), 2);
  const kl = (a: Tensor2D) => tf.sum(tf.mul(a, tf.sub(tf.log(tf.add(a, e)), tf.log(tf.add(m, e)))), 1);
  return tf.clipByValue(tf.mul(0.5, tf.add(kl(p), kl(q))), 0, Math.LN2) as Tensor1D;
}

function worstTile(d2: Tensor4D, k: number): Tensor1D {
  const [, h, w] = d2.shape;
  const th = Math.ceil(h / k), tw = Math.ceil(w / k);
  const tiles: Tensor[] = [];
  for (let ty = 0; ty < k; ty++) {
    for (let tx = 0; tx < k; tx++) {
      const hh = Math.min(h, (ty + 1) * th) - ty * th, ww = Math.min(w, (tx + 1) * tw) - tx * tw;
      if (hh > 0 && ww > 0) tiles.push(tf.mean(tf.slice(d2, [0, ty * th, tx * tw, 0], [-1, hh, ww, -1]), [1, 2, 3]));
    }
  }
  return tf.max(tf.stack(tiles, 1), 1) as Tensor1D;
}

/** The detector's combined score as a TF.js function of x (forward exact, BPDA backward). */
export function surrogate(det: Detector, cal: Calibration, x: Tensor4D, mode: GuardMode): Surrogate {
  const logits = det.classifier.logits;
  if (!logits || !det.classifier.hasGradients) throw new Error(`classifier ${det.classifier.source} has no gradients: the detector-aware attack needs a differentiable classifier`);
  const T = det.options.temperature;
  const zb = logits(x);
  const pb = tf.softmax(zb), pbT = tf.softmax(tf.div(zb, T)) as Tensor2D;
  const feats: Record<string, Tensor1D> = {};
  const predB = tf.argMax(zb, 1).dataSync();
  let primary: Tensor2D | null = null;
  det.pipelines.forEach((p, j) => {
    const px = p.apply(x);
    const za = logits(px);
    if (j === 0) primary = za;
    const pa = tf.softmax(za), paT = tf.softmax(tf.div(za, T)) as Tensor2D;
    const predA = tf.argMax(za, 1).dataSync();
    const key = (s: string) => scoreKey(p.name, s, det.multi);
    feats[key('labelFlip')] = tf.tensor1d(Array.from(predB, (v, i) => (v === predA[i] ? 0 : 1)));
    feats[key('l1')] = tf.sum(tf.abs(tf.sub(pb, pa)), 1) as Tensor1D;
    feats[key('js')] = jsDivergenceRows(pbT, paT);
    const d2 = tf.square(tf.sub(x, px)) as Tensor4D;
    feats[key('recon')] = tf.mean(d2, [1, 2, 3]) as Tensor1D;
    feats[key('reconWorstTile')] = worstTile(d2, det.tileGrid);
  });
  const c = cal.combiner;
  let s: Tensor1D = tf.fill([x.shape[0]], c.bias) as Tensor1D;
  c.keys.forEach((k, j) => {
    const v = feats[k];
    if (!v) throw new Error(`surrogate: no base score ${k}`);
    const f = k.endsWith('labelFlip') ? v : tf.log(tf.add(tf.relu(v), 1e-9));
    s = tf.add(s, tf.mul(c.weights[j]! / c.std[j]!, tf.sub(f, c.mean[j]!))) as Tensor1D;
  });
  return { logits: mode === 'original' ? zb : primary!, combined: s };
}

export interface AwareOptions {
  eps: number;
  steps: number;
  restarts: number;
  lambda: number;
  mode: GuardMode;
  kappa?: number;
  stepSize?: number;
  seed?: number;
}

export interface AwareResult {
  /** 1 where the attack evaded the guard: misclassified and not flagged. */
  evaded: Uint8Array;
  adv: Float32Array;
  gradientSteps: number;
}

export function detectorAwarePgd(det: Detector, x: Tensor4D, labels: Int32Array, opts: AwareOptions): AwareResult {
  const cal = det.calibration;
  if (!cal) throw new Error('the detector-aware attack needs a calibrated detector');
  const threshold = cal.thresholds.combined!;
  const [n, h, w, c] = x.shape;
  const size = h * w * c;
  const xData = x.dataSync() as Float32Array;
  const adv = new Float32Array(xData);
  const evaded = new Uint8Array(n);
  const kappa = opts.kappa ?? 1;
  const alpha = opts.stepSize ?? (2.5 * opts.eps) / Math.max(1, opts.steps);
  let gradientSteps = 0;
  let active = Array.from({ length: n }, (_, i) => i);
  /** Rows `idx` of an image array, packed. */
  const rows = (src: Float32Array, idx: number[]) => {
    const out = new Float32Array(idx.length * size);
    idx.forEach((i, j) => out.set(src.subarray(i * size, (i + 1) * size), j * size));
    return out;
  };
  let seed = opts.seed ?? 0;
  for (let r = 0; r < opts.restarts && active.length; r++) {
    let idx = active;
    let orig = rows(xData, idx);
    let cur = tf.tidy(() => {
      const t = tf.tensor4d(orig, [idx.length, h, w, c]);
      return tf.clipByValue(tf.add(t, tf.randomUniform(t.shape, -opts.eps, opts.eps, 'float32', seed++)), 0, 1).dataSync() as Float32Array;
    });
    for (let step = 0; step <= opts.steps && idx.length; step++) {
      const y = Int32Array.from(idx, (i) => labels[i]!);
      let pred!: Int32Array, comb!: Float32Array;
      const xt = tf.tensor4d(cur, [idx.length, h, w, c]);
      const g = tf.tidy(() =>
        tf.grad((xi) => {
          const s = surrogate(det, cal, xi as Tensor4D, opts.mode);
          pred = tf.argMax(s.logits, 1).dataSync() as Int32Array;
          comb = s.combined.dataSync() as Float32Array;
          const onehot = tf.oneHot(tf.tensor1d(y, 'int32'), s.logits.shape[1]!);
          const zy = tf.sum(tf.mul(onehot, s.logits), 1);
          const zo = tf.max(tf.sub(s.logits, tf.mul(onehot, 1e4)), 1);
          const margin = tf.maximum(tf.sub(zy, zo), -kappa);
          return tf.neg(tf.sum(tf.add(margin, tf.mul(opts.lambda, s.combined)))) as Scalar;
        })(xt),
      );
      gradientSteps += idx.length;
      const keep: number[] = [];
      idx.forEach((i, j) => {
        if (pred[j] !== labels[i] && comb[j]! <= threshold) {
          evaded[i] = 1;
          adv.set(cur.subarray(j * size, (j + 1) * size), i * size);
        } else keep.push(j);
      });
      if (step < opts.steps && keep.length) {
        const kp = tf.tensor1d(Int32Array.from(keep), 'int32');
        const o = rows(orig, keep);
        cur = tf.tidy(() => {
          const ot = tf.tensor4d(o, [keep.length, h, w, c]);
          const stepped = tf.add(tf.gather(xt, kp), tf.mul(alpha, tf.sign(tf.gather(g, kp))));
          return tf.clipByValue(tf.minimum(tf.maximum(stepped, tf.sub(ot, opts.eps)), tf.add(ot, opts.eps)), 0, 1).dataSync() as Float32Array;
        });
        orig = o;
        kp.dispose();
      } else if (keep.length) {
        cur = rows(cur, keep);
      }
      idx = keep.map((j) => idx[j]!);
      tf.dispose([xt, g]);
    }
    idx.forEach((i, j) => { if (!evaded[i]) adv.set(cur.subarray(j * size, (j + 1) * size), i * size); });
    active = idx;
  }
  return { evaded, adv, gradientSteps };
}
