/**
 * Detection scores for one input x, its purification p(x), and classifier probabilities
 * before (c(x)) and after (c(p(x))). Pure functions over plain arrays.
 *
 *   labelFlip   1 if argmax c(x) != argmax c(p(x)), else 0
 *   l1          sum_i |c(x)_i - c(p(x))_i|                      in [0, 2] (Feature Squeezing)
 *   js          Jensen-Shannon divergence of softmax(z/T) before/after, natural log,
 *               in [0, ln 2] (MagNet's probability-divergence detector, temperature T)
 *   recon       mean squared reconstruction error per pixel, ||x - p(x)||^2 / (H W C)
 *   reconWorstTile  the largest per-tile mean squared error over a k x k grid
 */
export const BASE_SCORES = ['labelFlip', 'l1', 'js', 'recon', 'reconWorstTile'] as const;
export type BaseScore = (typeof BASE_SCORES)[number];

export function argmax(p: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < p.length; i++) if (p[i]! > p[best]!) best = i;
  return best;
}

export function labelFlip(before: ArrayLike<number>, after: ArrayLike<number>): number {
  return argmax(before) === argmax(after) ? 0 : 1;
}

export function l1Distance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error('l1Distance: length mismatch');
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s;
}

export function softmax(logits: ArrayLike<number>, temperature = 1): Float64Array {
  const out = new Float64Array(logits.length);
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]! / temperature);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += out[i] = Math.exp(logits[i]! / temperature - max);
  for (let i = 0; i < out.length; i++) out[i]! /= sum;
  return out;
}

function kl(p: ArrayLike<number>, q: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < p.length; i++) if (p[i]! > 0) s += p[i]! * Math.log(p[i]! / q[i]!);
  return s;
}

/** Jensen-Shannon divergence of two distributions (natural log): symmetric, in [0, ln 2]. */
export function jsDivergence(p: ArrayLike<number>, q: ArrayLike<number>): number {
  if (p.length !== q.length) throw new Error('jsDivergence: length mismatch');
  const m = new Float64Array(p.length);
  for (let i = 0; i < p.length; i++) m[i] = (p[i]! + q[i]!) / 2;
  return Math.max(0, Math.min(Math.LN2, 0.5 * kl(p, m) + 0.5 * kl(q, m)));
}

/** JS divergence between softmax(z1/T) and softmax(z2/T). */
export function jsFromLogits(z1: ArrayLike<number>, z2: ArrayLike<number>, temperature: number): number {
  return jsDivergence(softmax(z1, temperature), softmax(z2, temperature));
}

/** Mean squared error between two images (HWC, same size). */
export function reconError(x: ArrayLike<number>, px: ArrayLike<number>): number {
  if (x.length !== px.length) throw new Error('reconError: length mismatch');
  let s = 0;
  for (let i = 0; i < x.length; i++) s += (x[i]! - px[i]!) ** 2;
  return s / x.length;
}

/** Largest per-tile MSE over a k x k grid of an HWC image (tiles of ceil(H/k) x ceil(W/k)). */
export function worstTileError(x: ArrayLike<number>, px: ArrayLike<number>, h: number, w: number, c: number, k: number): number {
  const th = Math.ceil(h / k), tw = Math.ceil(w / k);
  let worst = 0;
  for (let ty = 0; ty < k; ty++) {
    for (let tx = 0; tx < k; tx++) {
      let s = 0, n = 0;
      for (let y = ty * th; y < Math.min(h, (ty + 1) * th); y++) {
        for (let xx = tx * tw; xx < Math.min(w, (tx + 1) * tw); xx++) {
          for (let ch = 0; ch < c; ch++) {
            const i = (y * w + xx) * c + ch;
            s += (x[i]! - px[i]!) ** 2;
            n++;
          }
        }
      }
      if (n > 0) worst = Math.max(worst, s / n);
    }
  }
  return worst;
}

export interface ScoreInputs {
  image: ArrayLike<number>;
  purified: ArrayLike<number>;
  logitsBefore: ArrayLike<number>;
  logitsAfter: ArrayLike<number>;
  height: number;
  width: number;
  channels: number;
  /** Grid for the worst-tile error (the finest split of the pipeline, at least 2). */
  tileGrid: number;
  temperature: number;
}

/** The scores that need only the logits before and after. */
export function logitScores(before: ArrayLike<number>, after: ArrayLike<number>, temperature: number): Record<'labelFlip' | 'l1' | 'js', number> {
  const pb = softmax(before), pa = softmax(after);
  return { labelFlip: labelFlip(pb, pa), l1: l1Distance(pb, pa), js: jsFromLogits(before, after, temperature) };
}

export function baseScores(s: ScoreInputs): Record<BaseScore, number> {
  return {
    ...logitScores(s.logitsBefore, s.logitsAfter, s.temperature),
    recon: reconError(s.image, s.purified),
    reconWorstTile: worstTileError(s.image, s.purified, s.height, s.width, s.channels, s.tileGrid),
  };
}
