/** ROC utilities (pure). Higher score = more likely adversarial. */

/** Area under the ROC curve via the Mann-Whitney statistic (ties count one half). */
export function rocAuc(negatives: number[], positives: number[]): number {
  if (negatives.length === 0 || positives.length === 0) return NaN;
  const all = [...negatives.map((v) => ({ v, pos: 0 })), ...positives.map((v) => ({ v, pos: 1 }))].sort((a, b) => a.v - b.v);
  let rankSumPos = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j < all.length && all[j]!.v === all[i]!.v) j++;
    const avgRank = (i + 1 + j) / 2;
    for (let t = i; t < j; t++) if (all[t]!.pos) rankSumPos += avgRank;
    i = j;
  }
  const np = positives.length, nn = negatives.length;
  return (rankSumPos - (np * (np + 1)) / 2) / (np * nn);
}

/** Share of values strictly above a threshold. */
export function rateAbove(values: number[], threshold: number): number {
  if (values.length === 0) return NaN;
  return values.filter((v) => v > threshold).length / values.length;
}

/**
 * ROC curve points (fpr, tpr) from (0,0) to (1,1). Up to `maxPoints` thresholds spread over all
 * distinct scores, plus every threshold whose FPR is at most `keepBelowFpr` (default 5%), so the
 * low-FPR end (plotted on a log axis) keeps its full resolution.
 */
export function rocCurve(negatives: number[], positives: number[], maxPoints = 200, keepBelowFpr = 0.05): { fpr: number; tpr: number }[] {
  const ts = [...new Set([...negatives, ...positives])].sort((a, b) => b - a);
  const step = Math.max(1, Math.floor(ts.length / maxPoints));
  const pts = [{ fpr: 0, tpr: 0 }];
  const fprAt = (t: number) => negatives.filter((v) => v >= t).length / negatives.length;
  let fpr = ts.length ? fprAt(ts[0]!) : 0;
  for (let i = 0; i < ts.length; i++) {
    const t = ts[i]!;
    const next = i + 1 < ts.length ? fprAt(ts[i + 1]!) : 1;
    // Below keepBelowFpr: the last threshold of every FPR level (where the curve steps right).
    if (i % step === 0 || (fpr <= keepBelowFpr && next !== fpr)) pts.push({ fpr, tpr: positives.filter((v) => v >= t).length / positives.length });
    fpr = next;
  }
  pts.push({ fpr: 1, tpr: 1 });
  return pts;
}
