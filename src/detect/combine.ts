/**
 * The combined score: a logistic-regression combination of all base scores of all pipelines
 * a topic runs. Features are log-scaled continuous scores (l1, js, recon, reconWorstTile;
 * their clean distributions are heavy-tailed) and the 0/1 label flip, standardised by their
 * clean means and deviations. The weights are fitted at calibration time on the first half
 * of the clean calibration images (negatives) and attacked copies of those same images
 * (positives: FGSM and PGD at a spread of epsilons against the classifier). The threshold is
 * then the (1 - FPR) quantile of combined scores on the second, disjoint half of the clean
 * images, so the false-positive rate holds for the combination as a whole. Neither weights
 * nor thresholds ever see the test images a detection report is computed on.
 *
 * Measured on the shipped models (validation-fitted, test-evaluated), reconstruction error
 * alone was the strongest single score; a fixed max-of-normalised-scores combination was
 * weaker than it (the classifier scores' clean tails dominate), which is why the combination
 * is learned rather than fixed.
 */
export interface Combiner {
  keys: string[];
  mean: number[];
  std: number[];
  weights: number[];
  bias: number;
}

export function feature(key: string, v: number): number {
  if (key.endsWith('labelFlip')) return v;
  return Math.log(Math.max(v, 0) + 1e-9);
}

function features(keys: string[], s: Record<string, number>): number[] {
  return keys.map((k) => {
    const v = s[k];
    if (v === undefined) throw new Error(`combined score: missing base score ${k}`);
    return feature(k, v);
  });
}

/** Fits L2-regularised logistic regression by full-batch gradient descent (deterministic). */
export function fitCombiner(keys: string[], negatives: Record<string, number>[], positives: Record<string, number>[], opts: { iterations?: number; lr?: number; l2?: number } = {}): Combiner {
  if (negatives.length === 0 || positives.length === 0) throw new Error('fitCombiner needs clean and attacked examples');
  const neg = negatives.map((s) => features(keys, s));
  const pos = positives.map((s) => features(keys, s));
  const d = keys.length;
  const mean = new Array<number>(d).fill(0), std = new Array<number>(d).fill(0);
  for (const f of neg) f.forEach((v, j) => (mean[j]! += v / neg.length));
  for (const f of neg) f.forEach((v, j) => (std[j]! += (v - mean[j]!) ** 2 / neg.length));
  for (let j = 0; j < d; j++) std[j] = Math.sqrt(std[j]!) || 1;
  const z = (f: number[]) => f.map((v, j) => (v - mean[j]!) / std[j]!);
  const xs = [...neg.map(z), ...pos.map(z)];
  const ys = [...neg.map(() => 0), ...pos.map(() => 1)];
  // Balance the two classes.
  const wNeg = 0.5 / neg.length, wPos = 0.5 / pos.length;
  const w = new Array<number>(d).fill(0);
  let b = 0;
  const iterations = opts.iterations ?? 2000, lr = opts.lr ?? 0.5, l2 = opts.l2 ?? 1e-3;
  for (let it = 0; it < iterations; it++) {
    const gw = new Array<number>(d).fill(0);
    let gb = 0;
    xs.forEach((x, i) => {
      const p = 1 / (1 + Math.exp(-(x.reduce((a, v, j) => a + v * w[j]!, 0) + b)));
      const g = (p - ys[i]!) * (ys[i] ? wPos : wNeg);
      x.forEach((v, j) => (gw[j]! += g * v));
      gb += g;
    });
    for (let j = 0; j < d; j++) w[j]! -= lr * (gw[j]! + l2 * w[j]!);
    b -= lr * gb;
  }
  return { keys, mean, std, weights: w, bias: b };
}

/** The combined score (a logit: higher = more likely adversarial). */
export function combinedScore(scores: Record<string, number>, c: Combiner): number {
  const f = features(c.keys, scores);
  let s = c.bias;
  for (let j = 0; j < f.length; j++) s += c.weights[j]! * ((f[j]! - c.mean[j]!) / c.std[j]!);
  return s;
}

/**
 * Threshold t such that at most `fpr` of the clean values are strictly above t
 * (flag when score > t).
 */
export function thresholdForFpr(cleanValues: ArrayLike<number>, fpr: number): number {
  if (!(fpr >= 0 && fpr < 1)) throw new Error(`fpr must be in [0,1), got ${fpr}`);
  const s = Array.from(cleanValues).sort((a, b) => a - b);
  if (s.length === 0) throw new Error('thresholdForFpr: no clean values');
  const allowed = Math.floor(fpr * s.length);
  return s[s.length - 1 - allowed]!;
}
