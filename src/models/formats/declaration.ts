/**
 * How an external classifier reads its input and what it returns: the declaration every
 * classifier format takes (YAML or JSON, validated with zod). vqguard always hands a classifier a
 * batch [N,H,W,C] float32 with pixels in [0,1]; the declaration says how to turn that into the
 * model's own input (value range, per-channel normalisation, layout) and how to read its output.
 *
 *   format: onnx                  # vqguard-bundle | tfjs (Layers or Graph, from model.json) |
 *                                 # tfjs-layers | tfjs-graph | savedmodel | onnx
 *   path: model.onnx              # relative to the declaration file's folder
 *   input:
 *     height: 28, width: 28, channels: 1
 *     layout: NCHW                # NHWC (default) | NCHW
 *     range: "0-255"              # "0-1" (default) | "0-255" | { mean: [..], std: [..] }
 *                                 #   mean/std apply to [0,1] pixels: (x - mean[c]) / std[c]
 *     name: image                 # the model's input tensor (optional when it has just one)
 *   output:
 *     kind: logits                # logits | probabilities
 *     name: logits                # the model's output tensor (optional when it has just one)
 *   classes: [t-shirt, trouser, ...]
 *   signature: serving_default    # SavedModel only
 *   tags: [serve]                 # SavedModel only
 *   reference:                    # optional: checked at load
 *     file: reference.json        # images + the source model's probabilities (see README)
 *     tolerance: 1e-4             # largest |p - p_ref| accepted
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

export const CLASSIFIER_FORMATS = ['vqguard-bundle', 'tfjs', 'tfjs-layers', 'tfjs-graph', 'savedmodel', 'onnx'] as const;
export type ClassifierFormat = (typeof CLASSIFIER_FORMATS)[number];

const positiveInt = z.number().int().positive();

export const valueRangeSchema = z.union([
  z.literal('0-1'),
  z.literal('0-255'),
  z
    .object({ mean: z.array(z.number()).min(1), std: z.array(z.number().positive()).min(1) })
    .strict()
    .refine((r) => r.mean.length === r.std.length, { message: 'mean and std must have the same length (one value per channel)' }),
]);
export type ValueRange = z.infer<typeof valueRangeSchema>;

export const classifierDeclarationSchema = z
  .object({
    format: z.enum(CLASSIFIER_FORMATS),
    path: z.string().min(1),
    input: z
      .object({
        height: positiveInt,
        width: positiveInt,
        channels: z.union([z.literal(1), z.literal(3)]),
        layout: z.enum(['NHWC', 'NCHW']).default('NHWC'),
        range: valueRangeSchema.default('0-1'),
        name: z.string().min(1).optional(),
      })
      .strict(),
    output: z
      .object({
        kind: z.enum(['logits', 'probabilities']),
        name: z.string().min(1).optional(),
      })
      .strict(),
    classes: z.array(z.string().min(1)).min(2),
    signature: z.string().min(1).default('serving_default'),
    tags: z.array(z.string()).default(['serve']),
    reference: z
      .object({ file: z.string().min(1), tolerance: z.number().positive().default(1e-4) })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((d, ctx) => {
    const r = d.input.range;
    if (typeof r === 'object' && r.mean.length !== d.input.channels) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['input', 'range'], message: `mean/std have ${r.mean.length} values but input.channels is ${d.input.channels}` });
    }
    if (new Set(d.classes).size !== d.classes.length) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['classes'], message: 'class names must be distinct' });
    }
  });

export type ClassifierDeclarationInput = z.input<typeof classifierDeclarationSchema>;
export type ClassifierDeclaration = z.infer<typeof classifierDeclarationSchema>;

/** A declaration that cannot be used, or that the model contradicts. `key` names the field. */
export class DeclarationError extends Error {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(`classifier declaration: ${key}: ${message}`);
    this.name = 'DeclarationError';
  }
}

/**
 * Validate a declaration. Relative `path` and `reference.file` are resolved against `baseDir`.
 * Errors name the offending key, e.g. "classifier declaration: input.layout: ...".
 */
export function parseDeclaration(raw: unknown, baseDir = process.cwd()): ClassifierDeclaration {
  const r = classifierDeclarationSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const key = issue.path.join('.') || '(root)';
    const more = r.error.issues.length > 1 ? ` (and ${r.error.issues.length - 1} more)` : '';
    throw new DeclarationError(key, issue.message + more);
  }
  const d = r.data;
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  return { ...d, path: abs(d.path), ...(d.reference ? { reference: { ...d.reference, file: abs(d.reference.file) } } : {}) };
}

/** Read a declaration from a YAML (or JSON) file; relative paths in it are relative to the file. */
export function readDeclarationFile(file: string): ClassifierDeclaration {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new DeclarationError('(file)', `${file}: ${(e as Error).message}`);
  }
  return parseDeclaration(raw, dirname(resolve(file)));
}
