/**
 * Calibration: thresholds set on held-out clean images (the validation split, never the
 * attacked test data) so that at most a chosen share of clean images is flagged.
 * The clean set is cut in two disjoint halves: the first (with attacked copies of its
 * images) fits the combined score's weights, the second gives the thresholds.
 */
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import { combinedScore, fitCombiner, thresholdForFpr, type Combiner } from './combine.ts';

export const CALIBRATION_FORMAT = 'vqguard-calibration/1';

const num = z.number().finite();
const combinerSchema: z.ZodType<Combiner> = z.object({ keys: z.array(z.string()), mean: z.array(num), std: z.array(num), weights: z.array(num), bias: num });

/** A calibration file (the one source of the Calibration type). */
export const calibrationSchema = z.object({
  format: z.string(),
  pipelines: z.array(z.string().min(1)).min(1),
  temperature: num.positive(),
  tileGrid: z.number().int().positive(),
  /** Operating false-positive rate: `thresholds` are for this rate. */
  fpr: num.min(0).max(1),
  thresholds: z.record(num).refine((t) => t.combined !== undefined, 'no combined threshold'),
  /** Thresholds at other rates (keys like "0.01", "0.05"). */
  thresholdsByFpr: z.record(z.record(num)),
  combiner: combinerSchema,
  samples: z.object({ fit: z.number().int().nonnegative(), fitAttacked: z.number().int().nonnegative(), threshold: z.number().int().nonnegative() }),
  dataset: z.string(),
  modelVersions: z.record(z.string()),
  command: z.string(),
  createdAt: z.string(),
});

export type Calibration = z.infer<typeof calibrationSchema>;

export function calibrate(
  cleanScores: Record<string, number>[],
  /** Scores of attacked copies of the first half of cleanScores' images. */
  attackedScores: Record<string, number>[],
  keys: string[],
  fprs: number[],
  meta: Pick<Calibration, 'pipelines' | 'temperature' | 'tileGrid' | 'dataset' | 'modelVersions' | 'command'>,
): Calibration {
  if (cleanScores.length < 20) throw new Error(`calibration needs at least 20 clean images, got ${cleanScores.length}`);
  const half = Math.floor(cleanScores.length / 2);
  const first = cleanScores.slice(0, half), second = cleanScores.slice(half);
  const combiner = fitCombiner(keys, first, attackedScores);
  const combined = second.map((s) => combinedScore(s, combiner));
  const thresholdsByFpr: Record<string, Record<string, number>> = {};
  for (const fpr of fprs) {
    const t: Record<string, number> = { combined: thresholdForFpr(combined, fpr) };
    for (const k of keys) t[k] = thresholdForFpr(second.map((s) => s[k]!), fpr);
    thresholdsByFpr[String(fpr)] = t;
  }
  return {
    format: CALIBRATION_FORMAT,
    ...meta,
    fpr: fprs[0]!,
    thresholds: thresholdsByFpr[String(fprs[0])]!,
    thresholdsByFpr,
    combiner,
    samples: { fit: first.length, fitAttacked: attackedScores.length, threshold: second.length },
    createdAt: new Date().toISOString(),
  };
}

export function saveCalibration(path: string, c: Calibration): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(c) + '\n');
}

export function loadCalibration(path: string): Calibration {
  if (!existsSync(path)) throw new Error(`calibration file ${path} does not exist: run \`vqguard calibrate\``);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`calibration file ${path}: not valid JSON (${(e as Error).message})`);
  }
  const format = (raw as { format?: unknown } | null)?.format;
  if (format !== CALIBRATION_FORMAT) throw new Error(`calibration file ${path}: unsupported format "${String(format)}"`);
  const r = calibrationSchema.safeParse(raw);
  if (!r.success) {
    const why = r.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ');
    throw new Error(`calibration file ${path}: ${why}`);
  }
  return r.data;
}

export function defaultCalibrationPath(modelsDir: string, pipelines: string[]): string {
  const tag = pipelines.map((p) => p.replace(/>/g, '-').replace(/:/g, '_')).join('+');
  return `${modelsDir}/calibration/${tag}.json`;
}
