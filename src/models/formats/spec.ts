/**
 * `--classifier` values:
 *   <file>.yaml | .yml | .json          a declaration file (declaration.ts);
 *   <format>:<path>                     the model, with its declaration beside it in
 *                                       <path>.yaml, or <path>/classifier.yaml for a folder;
 *                                       a vqguard bundle needs none (it describes itself);
 *   <path to a vqguard bundle folder>   as today.
 * A model without a declaration is refused with a template filled in from what the model says
 * about itself (tensor names and shapes), so the user only adds what it cannot say: value
 * range, logits or probabilities, class names.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { CLASSIFIER_FORMATS, DeclarationError, readDeclarationFile, type ClassifierDeclaration, type ClassifierFormat } from './declaration.ts';
import { bundleDeclaration } from './vqguard/index.ts';
import { openTfjs } from './tfjs/index.ts';
import { openSavedModel } from './savedmodel/index.ts';
import { openOnnx } from './onnx/index.ts';
import type { FormatModel, TensorInfo } from './types.ts';

const DECL_EXT = /\.(ya?ml|json)$/i;

/** Where the declaration of `<format>:<path>` is looked for, in order. */
export function declarationCandidates(path: string): string[] {
  const p = resolve(path);
  const out = [`${p}.yaml`, `${p}.yml`];
  if (existsSync(p) && statSync(p).isDirectory()) out.unshift(join(p, 'classifier.yaml'), join(p, 'classifier.yml'));
  return out;
}

function isBundleDir(p: string): boolean {
  return existsSync(join(p, 'model.json')) && existsSync(join(p, 'weights.bin'));
}

/** The model's own description of its tensors, for the template. */
async function inspect(format: ClassifierFormat, path: string): Promise<{ inputs: TensorInfo[]; outputs: TensorInfo[] } | null> {
  const stub = {
    format,
    path: resolve(path),
    input: { height: 1, width: 1, channels: 1 as const, layout: 'NHWC' as const, range: '0-1' as const },
    output: { kind: 'logits' as const },
    classes: ['a', 'b'],
    signature: 'serving_default',
    tags: ['serve'],
  };
  let m: FormatModel | null = null;
  try {
    m = format === 'onnx' ? await openOnnx(stub) : format === 'savedmodel' ? await openSavedModel(stub) : format.startsWith('tfjs') ? await openTfjs(stub) : null;
    return m ? { inputs: m.inputs, outputs: m.outputs } : null;
  } catch {
    return null;
  } finally {
    m?.dispose();
  }
}

/** A YAML template for a model that has no declaration yet. */
export async function declarationTemplate(format: ClassifierFormat, path: string): Promise<string> {
  const info = await inspect(format, path);
  const inp = info?.inputs[0];
  const out = info?.outputs[0];
  const s = inp?.shape && inp.shape.length === 4 ? inp.shape : null;
  // Guess the layout from where a 1 or 3 sits; the user confirms it.
  const nchw = !!s && (s[1] === 1 || s[1] === 3) && !(s[3] === 1 || s[3] === 3);
  const [h, w, c] = s ? (nchw ? [s[2], s[3], s[1]] : [s[1], s[2], s[3]]) : [null, null, null];
  const v = (x: number | null | undefined) => (x !== null && x !== undefined && x > 0 ? String(x) : '?');
  const k = out?.shape?.[1];
  return [
    `format: ${format}`,
    // Relative to the declaration file, which sits beside the model (or inside its folder).
    `path: ${existsSync(path) && statSync(path).isDirectory() ? '.' : basename(path)}`,
    `input: { height: ${v(h)}, width: ${v(w)}, channels: ${v(c)}, layout: ${nchw ? 'NCHW' : 'NHWC'}, range: "?  0-1 | 0-255 | {mean: [..], std: [..]}"${inp ? `, name: ${inp.name}` : ''} }`,
    `output: { kind: "?  logits | probabilities"${out ? `, name: ${out.name}` : ''} }`,
    `classes: [? ${k !== null && k !== undefined && k > 0 ? `${k} names` : 'one name per output'}]`,
  ].join('\n');
}

/** Turn a --classifier value into a declaration (relative paths resolved). */
export async function resolveClassifierSpec(spec: string): Promise<ClassifierDeclaration> {
  const s = spec.trim();
  if (DECL_EXT.test(s) && existsSync(s)) return readDeclarationFile(s);
  const colon = s.indexOf(':');
  const head = colon > 0 ? s.slice(0, colon) : '';
  if ((CLASSIFIER_FORMATS as readonly string[]).includes(head)) {
    const format = head as ClassifierFormat;
    const path = s.slice(colon + 1);
    if (!path) throw new DeclarationError('path', `'${spec}': no path after '${format}:'`);
    if (!existsSync(path)) throw new DeclarationError('path', `'${spec}': ${path} does not exist`);
    for (const c of declarationCandidates(path)) {
      if (existsSync(c)) {
        const d = readDeclarationFile(c);
        if (d.format !== format && !(format === 'tfjs' && d.format.startsWith('tfjs'))) {
          throw new DeclarationError('format', `'${spec}' says ${format} but ${c} declares ${d.format}`);
        }
        const same = [resolve(path), join(resolve(path), 'model.json')].includes(resolve(d.path));
        if (!same) throw new DeclarationError('path', `${c} declares path ${d.path}, not ${resolve(path)}`);
        return d;
      }
    }
    if (format === 'vqguard-bundle') return bundleDeclaration(path);
    throw new DeclarationError(
      '(file)',
      `'${spec}' has no declaration; write ${declarationCandidates(path)[0]} saying how the model reads its input, e.g.\n${await declarationTemplate(format, path)}`,
    );
  }
  if (existsSync(s) && isBundleDir(s)) return bundleDeclaration(s);
  throw new DeclarationError('(spec)', `'${spec}': expected a declaration file (.yaml/.json), <format>:<path> with format one of ${CLASSIFIER_FORMATS.join(', ')}, or a vqguard bundle folder`);
}
