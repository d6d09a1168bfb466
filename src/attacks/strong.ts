/**
 * Strong L-infinity PGD for worst-case evaluation (Carlini et al. 2019, "On evaluating
 * adversarial robustness"): N steps, R random restarts, success counted at any step (an image
 * stops at its first success, so only robust images cost the full budget), EOT (gradients
 * averaged over samples) when the defended model is random.
 *
 * An attack path says what is differentiated and what is judged:
 *   - `grad`: the logits whose cross-entropy gradient drives the step (classifier alone for
 *     PGD; purifier-then-classifier with the stages' BPDA backward; or with the whole purifier's
 *     backward as the identity);
 *   - `judge`: the defended prediction (purify then classify) that decides success. When the
 *     gradient's own forward is the defended model (BPDA paths), its logits judge the same
 *     point and no extra forward is run. For a random defence the judge is the majority of
 *     `eot` draws (the EOT samples themselves on BPDA paths).
 */
import { tf } from '../backend/tf.ts';
import type { Tensor, Tensor1D, Tensor2D, Tensor4D } from '@tensorflow/tfjs-node';
import type { LogitsFn } from './attacks.ts';

export interface AttackPath {
  name: string;
  grad: LogitsFn;
  /** Defended logits; omit when `grad`'s forward is the defended model itself. */
  judge?: LogitsFn;
  /** The defended model is random: average the gradient over `eot` samples. */
  random?: boolean;
}

export interface StrongOptions {
  eps: number;
  steps: number;
  restarts: number;
  /** Step size; default 2.5 * eps / steps. */
  stepSize?: number;
  /** Gradient samples per step when the path is random (>= 20 for reported numbers). */
  eot?: number;
  seed?: number;
}

export interface StrongResult {
  /** The first successful adversarial image per broken image; the last iterate for the others. */
  adv: Float32Array;
  /** 1 where the attack succeeded (the defended model misclassifies adv). */
  success: Uint8Array;
  /** Gradient steps spent (over all images and restarts): the cost actually paid. */
  gradientSteps: number;
}

/** Per row: 1 where the logits' argmax differs from the label. */
function wrongRows(logits: Tensor2D, y: Tensor1D): Tensor1D {
  return tf.tidy(() => tf.cast(tf.notEqual(tf.argMax(logits, 1), y), 'float32') as Tensor1D);
}

/**
 * Loss gradient at x, EOT-averaged over `samples` passes, and per row the share of those passes
 * whose prediction is wrong (0 or 1 for a deterministic path).
 */
function gradAndWrong(f: LogitsFn, x: Tensor4D, y: Tensor1D, samples: number): { g: Tensor4D; wrong: Float32Array } {
  const gs: Tensor[] = [];
  let wrong: Tensor1D | null = null;
  for (let s = 0; s < samples; s++) {
    const g = tf.tidy(() =>
      tf.grad((xi) => {
        const l = f(xi as Tensor4D);
        const w = tf.keep(wrongRows(l, y));
        if (wrong) {
          const sum = tf.keep(tf.add(wrong, w)) as Tensor1D;
          tf.dispose([wrong, w]);
          wrong = sum;
        } else wrong = w;
        const onehot = tf.oneHot(y, l.shape[1]!);
        return tf.losses.softmaxCrossEntropy(onehot, l, undefined, 0, tf.Reduction.SUM);
      })(x),
    );
    gs.push(g);
  }
  const g = gs.length === 1 ? (gs[0] as Tensor4D) : (tf.tidy(() => tf.div(tf.addN(gs), gs.length)) as Tensor4D);
  if (gs.length > 1) tf.dispose(gs);
  const w = (wrong as unknown as Tensor1D).dataSync() as Float32Array;
  (wrong as unknown as Tensor1D).dispose();
  return { g, wrong: w.map((v) => v / samples) };
}

/**
 * Runs PGD with restarts on `x` [N,H,W,C] (labels `labels`) along one attack path. `skip`
 * marks images already broken (by an earlier attack); they are not attacked.
 */
export function strongPgd(path: AttackPath, x: Tensor4D, labels: Int32Array, opts: StrongOptions, skip?: Uint8Array): StrongResult {
  const [n, h, w, c] = x.shape;
  const size = h * w * c;
  const xData = x.dataSync() as Float32Array;
  const adv = new Float32Array(xData);
  const success = new Uint8Array(n);
  let gradientSteps = 0;
  const alpha = opts.stepSize ?? (2.5 * opts.eps) / Math.max(1, opts.steps);
  const eot = path.random ? Math.max(1, opts.eot ?? 20) : 1;
  // `wrong`: per active image, the share of the judge's draws that misclassify it (one draw
  // for a deterministic path). A random defence is broken at a step only when the majority of
  // `eot` fresh draws misclassify (the guard purifies each record once, with its own draw).
  const mark = (idx: number[], wrong: Float32Array, cur: Float32Array): number[] => {
    const still: number[] = [];
    idx.forEach((i, j) => {
      if (wrong[j]! > 0.5) {
        success[i] = 1;
        adv.set(cur.subarray(j * size, (j + 1) * size), i * size);
      } else still.push(i);
    });
    return still;
  };
  const gatherRows = (src: Float32Array, idx: number[]): Float32Array => {
    const out = new Float32Array(idx.length * size);
    idx.forEach((i, j) => out.set(src.subarray(i * size, (i + 1) * size), j * size));
    return out;
  };
  const judgeOnly = (cur: Float32Array, idx: number[]): Float32Array =>
    tf.tidy(() => {
      const xt = tf.tensor4d(cur, [idx.length, h, w, c]);
      const yt = tf.tensor1d(Int32Array.from(idx, (i) => labels[i]!), 'int32') as Tensor1D;
      let sum: Tensor1D = tf.zeros([idx.length]);
      for (let s = 0; s < eot; s++) sum = tf.add(sum, wrongRows((path.judge ?? path.grad)(xt), yt));
      return tf.div(sum, eot).dataSync() as Float32Array;
    });
  let active: number[] = [];
  for (let i = 0; i < n; i++) if (!skip?.[i]) active.push(i);
  if (opts.eps === 0 || opts.steps === 0) {
    if (active.length) mark(active, judgeOnly(gatherRows(xData, active), active), gatherRows(xData, active));
    return { adv, success, gradientSteps };
  }
  let seed = opts.seed ?? 0;
  for (let r = 0; r < opts.restarts && active.length > 0; r++) {
    const x0 = gatherRows(xData, active);
    let idx = active;
    // Random start in the eps-ball.
    let cur = tf.tidy(() => {
      const t = tf.tensor4d(x0, [idx.length, h, w, c]);
      return tf.clipByValue(tf.add(t, tf.randomUniform(t.shape, -opts.eps, opts.eps, 'float32', seed++)), 0, 1).dataSync() as Float32Array;
    });
    let orig = x0;
    for (let step = 0; step <= opts.steps && idx.length > 0; step++) {
      const xt = tf.tensor4d(cur, [idx.length, h, w, c]);
      const yt = tf.tensor1d(Int32Array.from(idx, (i) => labels[i]!), 'int32') as Tensor1D;
      let pred: Float32Array;
      let g: Tensor4D | null = null;
      if (step < opts.steps) {
        const r2 = gradAndWrong(path.grad, xt, yt, eot);
        g = r2.g;
        gradientSteps += idx.length * eot;
        pred = path.judge ? judgeOnly(cur, idx) : r2.wrong;
      } else {
        pred = judgeOnly(cur, idx);
      }
      const keepPos: number[] = [];
      const before = idx;
      idx = mark(idx, pred, cur);
      if (g && idx.length > 0) {
        before.forEach((i, j) => {
          if (!success[i]) keepPos.push(j);
        });
        const kp = tf.tensor1d(Int32Array.from(keepPos), 'int32');
        const o = new Float32Array(keepPos.length * size);
        keepPos.forEach((j, q) => o.set(orig.subarray(j * size, (j + 1) * size), q * size));
        cur = tf.tidy(() => {
          const xs = tf.gather(xt, kp) as Tensor4D;
          const gs = tf.gather(g!, kp) as Tensor4D;
          const ot = tf.tensor4d(o, [keepPos.length, h, w, c]);
          const stepped = tf.add(xs, tf.mul(alpha, tf.sign(gs)));
          const proj = tf.minimum(tf.maximum(stepped, tf.sub(ot, opts.eps)), tf.add(ot, opts.eps));
          return tf.clipByValue(proj, 0, 1).dataSync() as Float32Array;
        });
        orig = o;
        kp.dispose();
      }
      tf.dispose([xt, yt]);
      g?.dispose();
    }
    // Survivors keep the last iterate of the last restart as their adv.
    if (idx.length > 0) idx.forEach((i, j) => adv.set(cur.subarray(j * size, (j + 1) * size), i * size));
    active = idx;
  }
  return { adv, success, gradientSteps };
}

export interface WorstCaseResult extends StrongResult {
  /** Per image: index of the path that broke it first, -1 if none did. */
  brokenBy: Int8Array;
  /** Images broken first by each path. */
  perPath: { name: string; broken: number; gradientSteps: number }[];
}

/**
 * Worst case over attack paths: each path attacks only the images the earlier paths did not
 * break, so an image counts as robust only if every path, every restart, every step failed.
 */
export function worstCase(paths: AttackPath[], x: Tensor4D, labels: Int32Array, opts: StrongOptions): WorstCaseResult {
  const n = x.shape[0];
  const success = new Uint8Array(n);
  const brokenBy = new Int8Array(n).fill(-1);
  let adv: Float32Array | null = null;
  let gradientSteps = 0;
  const perPath: WorstCaseResult['perPath'] = [];
  const size = x.size / n;
  paths.forEach((p, k) => {
    const r = strongPgd(p, x, labels, { ...opts, seed: (opts.seed ?? 0) + 1000 * k }, success);
    let broken = 0;
    for (let i = 0; i < n; i++) {
      if (r.success[i]) {
        success[i] = 1;
        brokenBy[i] = k;
        broken++;
      }
    }
    if (!adv) adv = r.adv;
    else for (let i = 0; i < n; i++) if (r.success[i] || !success[i]) adv.set(r.adv.subarray(i * size, (i + 1) * size), i * size);
    gradientSteps += r.gradientSteps;
    perPath.push({ name: p.name, broken, gradientSteps: r.gradientSteps });
  });
  return { adv: adv ?? new Float32Array(x.dataSync()), success, brokenBy, gradientSteps, perPath };
}
