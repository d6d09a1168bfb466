/** The one percentile helper: linear interpolation between the closest ranks of sorted values. */
export function quantile(sorted: readonly number[], q: number): number {
  if (!sorted.length) return NaN;
  const i = (sorted.length - 1) * q;
  const lo = Math.floor(i), hi = Math.ceil(i);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (i - lo);
}

/** quantile() of values in any order. */
export function percentile(values: readonly number[], q: number): number {
  return quantile([...values].sort((a, b) => a - b), q);
}
