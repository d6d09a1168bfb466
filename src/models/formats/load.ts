/**
 * Load any supported classifier from its declaration and check the two against each other
 * before it is used:
 *   1. tensor names: the declared input/output exist (or the model has exactly one);
 *   2. static shapes from the model's metadata: rank 4 input whose H, W, C sit where the
 *      declared layout says, and an output of [N, classes.length];
 *   3. a probe batch: the model runs on it, returns [N, classes.length] finite values, and its
 *      rows are probabilities exactly when output.kind says so;
 *   4. with `reference`, the source model's probabilities on reference images are reproduced
 *      within `reference.tolerance`; when they are not, single-key variations of the
 *      declaration are tried so the error can say which key is wrong.
 * Every failure is a DeclarationError naming the key.
 */
import { readFileSync } from 'node:fs';
import type { Tensor2D, Tensor4D } from '@tensorflow/tfjs-node';
import { tf } from '../../backend/tf.ts';
import { mulberry32 } from '../../nn/random.ts';
import {
  DeclarationError,
  parseDeclaration,
  readDeclarationFile,
  type ClassifierDeclaration,
  type ClassifierDeclarationInput,
} from './declaration.ts';
import { declaredInputShape, toLogits, toModelInput, toProbabilities } from './preprocess.ts';
import type { FormatModel, LoadedClassifier, TensorInfo } from './types.ts';
import { openBundle } from './vqguard/index.ts';
import { openTfjs } from './tfjs/index.ts';
import { openSavedModel } from './savedmodel/index.ts';
import { openOnnx } from './onnx/index.ts';

export interface ReferenceSet {
  n: number;
  height: number;
  width: number;
  channels: number;
  /** NHWC in [0,1]. */
  images: Float32Array;
  labels?: number[];
  probabilities: number[][];
}

export interface ReferenceCheck {
  maxAbsDiff: number;
  top1Agreement: number;
  n: number;
  tolerance: number;
}

export interface CheckedClassifier extends LoadedClassifier {
  /** Result of the reference check, when the declaration has one. */
  readonly referenceCheck: ReferenceCheck | null;
}

async function openFormat(d: ClassifierDeclaration): Promise<FormatModel> {
  switch (d.format) {
    case 'vqguard-bundle':
      return openBundle(d);
    case 'tfjs':
    case 'tfjs-layers':
    case 'tfjs-graph':
      return openTfjs(d);
    case 'savedmodel':
      return openSavedModel(d);
    case 'onnx':
      return openOnnx(d);
  }
}

function pickName(kind: 'input' | 'output', declared: string | undefined, available: TensorInfo[]): TensorInfo {
  const names = available.map((t) => `'${t.name}'`).join(', ');
  if (declared !== undefined) {
    const t = available.find((x) => x.name === declared);
    if (!t) throw new DeclarationError(`${kind}.name`, `the model has no ${kind} '${declared}' (its ${kind}s: ${names || 'none'})`);
    return t;
  }
  if (available.length !== 1) throw new DeclarationError(`${kind}.name`, `the model has ${available.length} ${kind}s (${names}); name the one to use`);
  return available[0]!;
}

const fmt = (s: readonly (number | null)[]) => `[${s.map((v) => (v === null || v < 0 ? 'N' : String(v))).join(', ')}]`;

function checkInputShape(d: ClassifierDeclaration, t: TensorInfo): void {
  if (!t.shape) return;
  if (t.shape.length !== 4) {
    throw new DeclarationError('input.name', `model input '${t.name}' has shape ${fmt(t.shape)}; an image batch of rank 4 is expected`);
  }
  const want = declaredInputShape(d);
  const fits = (w: number[]) => w.every((v, i) => i === 0 || t.shape![i] === null || t.shape![i]! < 0 || t.shape![i] === v);
  if (fits(want)) return;
  const other = declaredInputShape({ ...d, input: { ...d.input, layout: d.input.layout === 'NHWC' ? 'NCHW' : 'NHWC' } });
  if (fits(other)) {
    throw new DeclarationError(
      'input.layout',
      `model input '${t.name}' has shape ${fmt(t.shape)}, which is ${d.input.layout === 'NHWC' ? 'NCHW' : 'NHWC'}; declared ${d.input.layout} expects ${fmt(want)}`,
    );
  }
  const keys = d.input.layout === 'NHWC' ? ['height', 'width', 'channels'] : ['channels', 'height', 'width'];
  for (let i = 1; i < 4; i++) {
    const m = t.shape[i];
    if (m !== null && m !== undefined && m > 0 && m !== want[i]) {
      throw new DeclarationError(`input.${keys[i - 1]}`, `model input '${t.name}' has shape ${fmt(t.shape)}; the declaration (${d.input.layout}, ${d.input.height}x${d.input.width}x${d.input.channels}) expects ${fmt(want)}`);
    }
  }
}

function checkOutputShape(d: ClassifierDeclaration, t: TensorInfo): void {
  if (!t.shape) return;
  const k = t.shape[t.shape.length - 1];
  if (t.shape.length === 2 && k !== null && k !== undefined && k > 0 && k !== d.classes.length) {
    throw new DeclarationError('classes', `model output '${t.name}' has ${k} classes (shape ${fmt(t.shape)}); the declaration lists ${d.classes.length}`);
  }
}

/** A deterministic probe batch: two seeded noise images and a mid-grey one, [3,H,W,C] in [0,1]. */
function probeBatch(d: ClassifierDeclaration): Tensor4D {
  const { height: h, width: w, channels: c } = d.input;
  const n = 3;
  const a = new Float32Array(n * h * w * c);
  const rng = mulberry32(12345);
  for (let i = 0; i < 2 * h * w * c; i++) a[i] = rng();
  a.fill(0.5, 2 * h * w * c);
  return tf.tensor4d(a, [n, h, w, c]);
}

async function runDeclared(m: FormatModel, d: ClassifierDeclaration, inName: string, outName: string, x: Tensor4D): Promise<Tensor2D> {
  const mi = toModelInput(x, d);
  try {
    return await m.run(mi, inName, outName);
  } finally {
    if (mi !== x) mi.dispose();
  }
}

async function probe(m: FormatModel, d: ClassifierDeclaration, inName: string, outName: string): Promise<void> {
  const x = probeBatch(d);
  let out: Tensor2D;
  try {
    out = await runDeclared(m, d, inName, outName, x);
  } catch (e) {
    if (e instanceof DeclarationError) throw e;
    const shape = fmt(declaredInputShape(d));
    throw new DeclarationError('input', `the model refused a probe batch of shape ${shape} (layout ${d.input.layout}, ${d.input.height}x${d.input.width}x${d.input.channels}): ${(e as Error).message.split('\n')[0]}`);
  } finally {
    x.dispose();
  }
  try {
    if (out.shape.length !== 2 || out.shape[0] !== 3) {
      throw new DeclarationError('output.name', `output '${outName}' has shape ${fmt(out.shape)} for a batch of 3; [3, ${d.classes.length}] expected`);
    }
    if (out.shape[1] !== d.classes.length) {
      throw new DeclarationError('classes', `the model returns ${out.shape[1]} scores per image; the declaration lists ${d.classes.length} classes`);
    }
    const v = (await out.data()) as Float32Array;
    if (!v.every(Number.isFinite)) throw new DeclarationError('output.name', `output '${outName}' has non-finite values on the probe batch`);
    const k = d.classes.length;
    let probRows = 0;
    let worst = 0;
    for (let r = 0; r < 3; r++) {
      const row = v.subarray(r * k, (r + 1) * k);
      const sum = row.reduce((s, x) => s + x, 0);
      const inUnit = row.every((x) => x >= -1e-6 && x <= 1 + 1e-6);
      if (inUnit && Math.abs(sum - 1) < 1e-3) probRows++;
      worst = Math.max(worst, Math.abs(sum - 1));
    }
    if (d.output.kind === 'probabilities' && probRows < 3) {
      throw new DeclarationError('output.kind', `declared probabilities, but output rows are not distributions (row sums off 1 by up to ${worst.toFixed(3)}); the model seems to return logits`);
    }
    if (d.output.kind === 'logits' && probRows === 3) {
      throw new DeclarationError('output.kind', 'declared logits, but every output row is already a probability distribution (values in [0,1] summing to 1); declare probabilities');
    }
  } finally {
    out.dispose();
  }
}

/** Read a reference file (written by scripts/external-classifier/make.py). */
export function readReference(file: string): ReferenceSet {
  let j: { n: number; height: number; width: number; channels: number; images: string; labels?: number[]; probabilities: number[][] };
  try {
    j = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new DeclarationError('reference.file', `${file}: ${(e as Error).message}`);
  }
  const bytes = Buffer.from(j.images, 'base64');
  if (bytes.length !== j.n * j.height * j.width * j.channels || j.probabilities.length !== j.n) {
    throw new DeclarationError('reference.file', `${file}: sizes disagree (${bytes.length} image bytes, ${j.probabilities.length} rows for n=${j.n}, ${j.height}x${j.width}x${j.channels})`);
  }
  const images = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) images[i] = bytes[i]! / 255;
  return { n: j.n, height: j.height, width: j.width, channels: j.channels, images, labels: j.labels, probabilities: j.probabilities };
}

/** Compare probabilities of `run(d)` on the reference images with the reference's. */
export function compareToReference(p: Float32Array, ref: ReferenceSet, tolerance: number): ReferenceCheck {
  const k = ref.probabilities[0]!.length;
  let maxAbsDiff = 0;
  let agree = 0;
  for (let i = 0; i < ref.n; i++) {
    const want = ref.probabilities[i]!;
    let am = 0;
    let bm = 0;
    for (let j = 0; j < k; j++) {
      maxAbsDiff = Math.max(maxAbsDiff, Math.abs(p[i * k + j]! - want[j]!));
      if (p[i * k + j]! > p[i * k + am]!) am = j;
      if (want[j]! > want[bm]!) bm = j;
    }
    if (am === bm) agree++;
  }
  return { maxAbsDiff, top1Agreement: agree / ref.n, n: ref.n, tolerance };
}

async function referenceProbabilities(m: FormatModel, d: ClassifierDeclaration, inName: string, outName: string, ref: ReferenceSet): Promise<Float32Array> {
  const x = tf.tensor4d(ref.images, [ref.n, ref.height, ref.width, ref.channels]);
  try {
    const out = await runDeclared(m, d, inName, outName, x);
    const p = toProbabilities(out, d);
    out.dispose();
    const v = (await p.data()) as Float32Array;
    p.dispose();
    return v;
  } finally {
    x.dispose();
  }
}

async function checkReference(m: FormatModel, d: ClassifierDeclaration, inName: string, outName: string): Promise<ReferenceCheck> {
  const { file, tolerance } = d.reference!;
  const ref = readReference(file);
  if (ref.height !== d.input.height || ref.width !== d.input.width || ref.channels !== d.input.channels) {
    throw new DeclarationError('reference.file', `reference images are ${ref.height}x${ref.width}x${ref.channels}; the declaration says ${d.input.height}x${d.input.width}x${d.input.channels}`);
  }
  if (ref.probabilities[0]!.length !== d.classes.length) {
    throw new DeclarationError('reference.file', `reference rows have ${ref.probabilities[0]!.length} classes; the declaration lists ${d.classes.length}`);
  }
  const check = compareToReference(await referenceProbabilities(m, d, inName, outName, ref), ref, tolerance);
  if (check.maxAbsDiff <= tolerance) return check;
  // Which single key, changed, would make the model agree with its reference?
  const variants: { key: string; value: string; d: ClassifierDeclaration }[] = [];
  for (const r of ['0-1', '0-255'] as const) {
    if (d.input.range !== r) variants.push({ key: 'input.range', value: `"${r}"`, d: { ...d, input: { ...d.input, range: r } } });
  }
  const kind = d.output.kind === 'logits' ? 'probabilities' : 'logits';
  variants.push({ key: 'output.kind', value: kind, d: { ...d, output: { ...d.output, kind } } });
  for (const v of variants) {
    try {
      const c = compareToReference(await referenceProbabilities(m, v.d, inName, outName, ref), ref, tolerance);
      if (c.maxAbsDiff <= tolerance) {
        throw new DeclarationError(v.key, `the model reproduces its reference probabilities only with ${v.key}: ${v.value} (declared: max |p - p_ref| = ${check.maxAbsDiff.toExponential(2)}, tolerance ${tolerance})`);
      }
    } catch (e) {
      if (e instanceof DeclarationError) throw e;
    }
  }
  throw new DeclarationError(
    'reference',
    `probabilities differ from the reference by up to ${check.maxAbsDiff.toExponential(2)} (tolerance ${tolerance}; top-1 agreement ${(100 * check.top1Agreement).toFixed(1)}%); check input.range, input.layout and output.kind`,
  );
}

/** Load and check a classifier. Accepts a parsed declaration or raw (unparsed) fields. */
export async function loadClassifier(decl: ClassifierDeclaration | ClassifierDeclarationInput, baseDir?: string): Promise<CheckedClassifier> {
  const d = parseDeclaration(decl, baseDir);
  const m = await openFormat(d);
  try {
    const inp = pickName('input', d.input.name, m.inputs);
    const outp = pickName('output', d.output.name, m.outputs);
    checkInputShape(d, inp);
    checkOutputShape(d, outp);
    await probe(m, d, inp.name, outp.name);
    const referenceCheck = d.reference ? await checkReference(m, d, inp.name, outp.name) : null;
    const runSync = m.runSync;
    const logits = runSync
      ? (x: Tensor4D): Tensor2D =>
          tf.tidy(() => {
            const y = runSync(toModelInput(x, d), inp.name, outp.name);
            return toLogits(y, d);
          })
      : undefined;
    const fwd = m.forwardSync ?? runSync;
    const forward = fwd
      ? (x: Tensor4D): Tensor2D =>
          tf.tidy(() => {
            const y = fwd(toModelInput(x, d), inp.name, outp.name);
            return toLogits(y, d);
          })
      : undefined;
    return {
      format: d.format,
      declaration: d,
      height: d.input.height,
      width: d.input.width,
      channels: d.input.channels,
      classes: d.classes,
      hasGradients: m.hasGradients && !!runSync,
      referenceCheck,
      ...(logits ? { logits } : {}),
      ...(forward ? { forward } : {}),
      probabilities: async (x: Tensor4D) => {
        if (x.shape[1] !== d.input.height || x.shape[2] !== d.input.width || x.shape[3] !== d.input.channels) {
          throw new Error(`classifier expects [N, ${d.input.height}, ${d.input.width}, ${d.input.channels}] in [0,1]; got [${x.shape.join(', ')}]`);
        }
        const out = await runDeclared(m, d, inp.name, outp.name, x);
        const p = toProbabilities(out, d);
        out.dispose();
        return p;
      },
      dispose: () => m.dispose(),
    };
  } catch (e) {
    m.dispose();
    throw e;
  }
}

/** Load from a declaration file (YAML/JSON). */
export async function loadClassifierFile(file: string): Promise<CheckedClassifier> {
  return loadClassifier(readDeclarationFile(file));
}
