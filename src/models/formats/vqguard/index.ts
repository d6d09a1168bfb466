/**
 * vqguard's own classifier bundles (vqguard-bundle/1) behind the common interface, so code
 * written against LoadedClassifier takes the built-in classifier and external ones alike.
 */
import type { Tensor2D, Tensor4D } from '@tensorflow/tfjs-node';
import { Classifier } from '../../../detect/classifier.ts';
import { loadBundle } from '../../bundle.ts';
import { DeclarationError, parseDeclaration, type ClassifierDeclaration } from '../declaration.ts';
import type { FormatModel } from '../types.ts';

/** The declaration that describes a vqguard classifier bundle (it reads [0,1] NHWC, returns logits). */
export function bundleDeclaration(dir: string, classes?: readonly string[]): ClassifierDeclaration {
  const { model, manifest } = loadBundle(dir);
  model.dispose();
  const c = manifest.config;
  if (c.kind !== 'classifier') throw new DeclarationError('path', `${dir} holds a ${c.kind} bundle, not a classifier`);
  return parseDeclaration({
    format: 'vqguard-bundle',
    path: dir,
    input: { height: c.height, width: c.width, channels: c.channels, layout: 'NHWC', range: '0-1' },
    output: { kind: 'logits' },
    classes: classes ?? Array.from({ length: c.classes }, (_, i) => String(i)),
  });
}

/** Wrap an in-memory Classifier (e.g. one just trained) as a format model. */
export function classifierModel(clf: Classifier): FormatModel {
  const { height: h, width: w, channels: c, classes } = clf.config;
  const runSync = (x: Tensor4D): Tensor2D => clf.logits(x);
  return {
    inputs: [{ name: 'x', shape: [-1, h, w, c] }],
    outputs: [{ name: 'logits', shape: [-1, classes] }],
    hasGradients: true,
    runSync,
    run: async (x) => runSync(x),
    dispose: () => clf.dispose(),
  };
}

export async function openBundle(d: ClassifierDeclaration): Promise<FormatModel> {
  const { model } = loadBundle(d.path);
  if (!(model instanceof Classifier)) {
    model.dispose();
    throw new DeclarationError('path', `${d.path} is a vqguard bundle but not a classifier`);
  }
  if (d.input.range !== '0-1' || d.input.layout !== 'NHWC' || d.output.kind !== 'logits') {
    model.dispose();
    throw new DeclarationError(
      d.input.range !== '0-1' ? 'input.range' : d.input.layout !== 'NHWC' ? 'input.layout' : 'output.kind',
      'a vqguard bundle reads NHWC pixels in [0,1] and returns logits (declare input.layout NHWC, input.range "0-1", output.kind logits)',
    );
  }
  return classifierModel(model);
}
