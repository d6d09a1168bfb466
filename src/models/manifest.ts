/**
 * A bundle's model.json: its zod schema (the one source of the BundleManifest type) and
 * readManifest, which reads and checks it without loading TensorFlow (the config check uses it).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { ClassifierConfig } from '../detect/classifier.ts';
import type { VqVaeConfig } from '../purify/vqvaeConfig.ts';
import type { GeneratorConfig } from '../baselines/generator.ts';

export const BUNDLE_FORMAT = 'vqguard-bundle/1';

export class BundleError extends Error {}

const dim = z.number().int().positive();
const num = z.number().finite();

const classifierConfig: z.ZodType<ClassifierConfig> = z.object({
  kind: z.literal('classifier'), height: dim, width: dim, channels: dim, classes: dim, conv1: dim, conv2: dim, hidden: dim,
  pool: z.enum(['flatten', 'global']).optional(),
});
const vqvaeConfig: z.ZodType<VqVaeConfig> = z.object({
  kind: z.literal('vqvae'), split: dim, height: dim, width: dim, channels: dim, filters: dim, embeddingDim: dim, codebookSize: dim,
  commitmentBeta: num, emaDecay: num, deadCodeThreshold: num, outputBiasInit: num,
  downsamples: z.number().int().min(2).max(5).optional(),
});
const generatorConfig: z.ZodType<GeneratorConfig> = z.object({ kind: z.literal('generator'), height: dim, width: dim, channels: dim, latent: dim });

export const trainingRecordSchema = z.object({
  command: z.string(),
  seed: z.number().int(),
  epochs: z.number().nonnegative(),
  batchSize: z.number().int().nonnegative(),
  learningRate: num,
  adversarial: z.object({ attacks: z.array(z.string()), maxEps: num, fraction: num }).nullish(),
  trainSeconds: num,
  backend: z.string(),
});

export const manifestSchema = z.object({
  format: z.string(),
  name: z.string(),
  config: z.union([classifierConfig, vqvaeConfig, generatorConfig]),
  params: z.array(
    z.object({
      name: z.string().min(1),
      shape: z.array(z.number().int().nonnegative()),
      trainable: z.boolean(),
      offset: z.number().int().nonnegative(),
      length: z.number().int().nonnegative(),
    }),
  ),
  weightsFile: z.string().regex(/^[^/\\]+$/, 'a file name inside the bundle folder'),
  weightsSha256: z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 hex digest'),
  /** Storage type of weights.bin; absent = float32. */
  weightsDtype: z.enum(['float32', 'float16']).optional(),
  /** How the stored weights were derived from the trained float32 ones. */
  conversion: z
    .object({ command: z.string(), from: z.literal('float32'), float32Sha256: z.string(), maxAbsError: num, convertedAt: z.string() })
    .optional(),
  dataset: z.object({
    name: z.string(),
    trainSize: z.number().int().nonnegative(),
    validationSize: z.number().int().nonnegative(),
    testSize: z.number().int().nonnegative(),
    seed: z.number().int(),
  }),
  training: trainingRecordSchema,
  metrics: z.record(num),
  createdAt: z.string(),
});

export type TrainingRecord = z.infer<typeof trainingRecordSchema>;
export type BundleManifest = z.infer<typeof manifestSchema>;
export type ModelConfig = BundleManifest['config'];

export function readManifest(dir: string): BundleManifest {
  const path = join(dir, 'model.json');
  if (!existsSync(path)) throw new BundleError(`model bundle not found: ${path} does not exist`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new BundleError(`model bundle ${dir}: model.json is not valid JSON (${(e as Error).message})`);
  }
  const format = (raw as { format?: unknown } | null)?.format;
  if (format !== BUNDLE_FORMAT) {
    throw new BundleError(`model bundle ${dir}: unsupported format "${String(format)}" (expected ${BUNDLE_FORMAT})`);
  }
  const r = manifestSchema.safeParse(raw);
  if (!r.success) {
    const why = r.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ');
    throw new BundleError(`model bundle ${dir}: model.json is malformed (${why})`);
  }
  return r.data;
}

// ---------------------------------------------------------------------------------------------
// modelset.json

export const MODELSET_FORMAT = 'vqguard-modelset/1';

export const modelSetSchema = z
  .object({
    format: z.literal(MODELSET_FORMAT),
    /** Declaration file of the guarded classifier, relative to the model set; null: <dir>/classifier. */
    classifier: z.string().min(1).nullable(),
    /** Class names in label order (the dataset's). */
    classes: z.array(z.string().min(1)).min(2),
    /** vqguard classifier bundle the attacks use when the guarded classifier has no gradients. */
    surrogate: z.string().min(1).nullable(),
    dataset: z.string(),
    height: z.number().int().positive(),
    width: z.number().int().positive(),
    channels: z.union([z.literal(1), z.literal(3)]),
  })
  .strict();
export type ModelSetManifest = z.infer<typeof modelSetSchema>;

/** A model set's modelset.json (written by `vqguard fit`), checked; null when there is none. Reads no TensorFlow. */
export function readModelSetFile(dir: string): ModelSetManifest | null {
  const p = join(dir, 'modelset.json');
  if (!existsSync(p)) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(p, 'utf8'));
  } catch (e) {
    throw new BundleError(`${p}: not valid JSON (${(e as Error).message})`);
  }
  const r = modelSetSchema.safeParse(raw);
  if (!r.success) {
    const why = r.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ');
    throw new BundleError(`${p}: ${why}`);
  }
  return r.data;
}
