/**
 * Worst-case robustness per pipeline: for each epsilon, every test image is attacked by BPDA
 * (the stages' straight-through / identity backward), BPDA with the whole purifier's backward
 * as the identity, and PGD on the classifier alone (judged through the pipeline), each with N
 * steps and R random restarts, success counted at any step. An image is robust only if all
 * three failed. Where a calibrated detector exists, the adversarial examples found (the first
 * successful iterate) are scored by it at the calibrated 1% clean FPR, and guard success =
 * correctly classified after purification OR flagged.
 */
import { tf } from '../backend/tf.ts';
import type { Tensor2D, Tensor4D } from '@tensorflow/tfjs-node';
import type { ImageSet } from '../data/dataset.ts';
import type { Classifier } from '../detect/classifier.ts';
import type { Detector } from '../detect/detector.ts';
import type { Pipeline } from '../purify/pipeline.ts';
import { identityBackward } from '../purify/stages/bpda.ts';
import { worstCase, type AttackPath, type StrongOptions } from '../attacks/strong.ts';

/** Wilson score interval (95%) for k successes in n trials. */
export function wilson(k: number, n: number, z = 1.96): [number, number] {
  if (n === 0) return [NaN, NaN];
  const p = k / n, d = 1 + (z * z) / n;
  const c = (p + (z * z) / (2 * n)) / d;
  const h = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d;
  return [Math.max(0, c - h), Math.min(1, c + h)];
}

/** The attack paths against one pipeline (null = the undefended classifier: PGD only). */
export function attackPaths(clf: Classifier, p: Pipeline | null): AttackPath[] {
  if (!p) return [{ name: 'pgd', grad: (x) => clf.logits(x) }];
  const random = p.stages.some((s) => s.random);
  const whole = identityBackward(tf, (x) => p.apply(x));
  return [
    { name: 'bpda', grad: (x) => clf.logits(p.apply(x)) as Tensor2D, random },
    { name: 'bpda-identity', grad: (x) => clf.logits(whole(x)) as Tensor2D, random },
    { name: 'pgd', grad: (x) => clf.logits(x), judge: (x) => clf.logits(p.apply(x)) as Tensor2D, random },
  ];
}

export interface WorstCaseCell {
  pipeline: string;
  eps: number;
  images: number;
  steps: number;
  restarts: number;
  eot: number;
  accuracy: number;
  accuracyCi: [number, number];
  /** Successful adversarials per path (each path only attacks the survivors of the earlier ones). */
  brokenBy: Record<string, number>;
  detector: string | null;
  /** Share of successful adversarials flagged (null without a detector or with none broken). */
  detectionRate: number | null;
  flaggedBroken: number;
  broken: number;
  /** Share flagged among all final images (clean column: the test-set false-positive rate). */
  flaggedAll: number | null;
  guardSuccess: number | null;
  guardCi: [number, number] | null;
  gradientSteps: number;
  seconds: number;
}

export function flagged(det: Detector, adv: Float32Array, shape: [number, number, number, number], batch = 100): boolean[] {
  const [n, h, w, c] = shape;
  const size = h * w * c;
  const out: boolean[] = [];
  for (let s = 0; s < n; s += batch) {
    const e = Math.min(n, s + batch);
    const x = tf.tensor4d(adv.subarray(s * size, e * size), [e - s, h, w, c]);
    out.push(...det.verdicts(det.raw(x)).map((v) => v.flagged));
    x.dispose();
  }
  return out;
}

export function worstCaseCell(
  clf: Classifier, p: Pipeline | null, det: Detector | null, set: ImageSet, eps: number,
  opts: Omit<StrongOptions, 'eps'> & { paths?: string[] },
): WorstCaseCell {
  const t0 = Date.now();
  const x = tf.tensor4d(set.images, [set.n, set.height, set.width, set.channels]) as Tensor4D;
  const all = attackPaths(clf, p);
  // The undefended classifier has only PGD; elsewhere `paths` (when given) selects paths by name.
  const paths = p && opts.paths ? all.filter((q) => opts.paths!.includes(q.name)) : all;
  if (paths.length === 0) throw new Error(`no attack path left (asked for ${opts.paths?.join(', ')})`);
  const r = worstCase(paths, x, set.labels, { ...opts, eps });
  x.dispose();
  const n = set.n;
  const broken = r.success.reduce((a, v) => a + v, 0);
  const correct = n - broken;
  let flags: boolean[] | null = null;
  if (det) flags = flagged(det, r.adv, [n, set.height, set.width, set.channels]);
  let flaggedBroken = 0, guard = 0, flaggedAll = 0;
  for (let i = 0; i < n; i++) {
    const f = flags ? flags[i]! : false;
    if (f) flaggedAll++;
    if (r.success[i] && f) flaggedBroken++;
    if (!r.success[i] || f) guard++;
  }
  const random = p?.stages.some((s) => s.random) ?? false;
  return {
    pipeline: p?.name ?? 'undefended',
    eps,
    images: n,
    steps: opts.steps,
    restarts: opts.restarts,
    eot: random ? Math.max(1, opts.eot ?? 20) : 1,
    accuracy: correct / n,
    accuracyCi: wilson(correct, n),
    brokenBy: Object.fromEntries(r.perPath.map((q) => [q.name, q.broken])),
    detector: det ? det.pipelines.map((q) => q.name).join('+') : null,
    detectionRate: det && broken > 0 ? flaggedBroken / broken : null,
    flaggedBroken,
    broken,
    flaggedAll: det ? flaggedAll / n : null,
    guardSuccess: det ? guard / n : correct / n,
    guardCi: wilson(det ? guard : correct, n),
    gradientSteps: r.gradientSteps,
    seconds: (Date.now() - t0) / 1000,
  };
}
