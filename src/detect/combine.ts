/**
 * The combined score. Base scores live on different scales (a 0/1 flip, an L1 in [0,2], an
 * MSE near 1e-3), so each is first mapped through its empirical distribution on clean
 * calibration images: rank(s) = P_clean(S < s) + P_clean(S = s)/2, in [0,1] (mid-rank, so a
 * tie-heavy score such as the label flip is not over-weighted). The combined score is the
 * largest rank over all base scores of all pipelines the topic runs. Its threshold is then
 * the (1 - FPR) quantile of combined scores on a second, disjoint half of the clean
 * calibration set, so the false-positive rate holds for the combination as a whole.
 */
export interface ScoreDistribution {
  /** Sorted clean values. */
  sorted: number[];
}

export function distribution(values: ArrayLike<number>): ScoreDistribution {
  return { sorted: Array.from(values).sort((a, b) => a - b) };
}

function lowerBound(a: number[], v: number): number {
  let lo = 0, hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function upperBound(a: number[], v: number): number {
  let lo = 0, hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid]! <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function midRank(d: ScoreDistribution, v: number): number {
  const n = d.sorted.length;
  if (n === 0) return 0;
  const below = lowerBound(d.sorted, v);
  const equal = upperBound(d.sorted, v) - below;
  return (below + equal / 2) / n;
}

export function combinedScore(scores: Record<string, number>, dists: Record<string, ScoreDistribution>): number {
  let best = 0;
  for (const [name, d] of Object.entries(dists)) {
    const v = scores[name];
    if (v === undefined) throw new Error(`combinedScore: missing score ${name}`);
    best = Math.max(best, midRank(d, v));
  }
  return best;
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
  // The value with `allowed` values above it (ties keep the count at or below allowed).
  return s[s.length - 1 - allowed]!;
}
