/**
 * What the detector, calibration and evaluation need from "the classifier being guarded": its
 * input shape, class names, scores for a batch (synchronously where the format allows it,
 * always asynchronously), and whether those scores are differentiable (white-box attacks).
 * vqguard's own Classifier and any external LoadedClassifier (models/guardClassifier.ts) fit.
 */
import { tf } from '../backend/tf.ts';
import type { Tensor2D, Tensor4D } from '@tensorflow/tfjs-node';
import type { Classifier } from './classifier.ts';

export interface ScoringClassifier {
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  /** Class names in the model set's (dataset's) label order, when known. */
  readonly classNames: readonly string[] | null;
  /** Where it comes from, e.g. `vqguard-bundle:models/mnist/classifier`, `onnx:/m/model.onnx`. */
  readonly source: string;
  /** True when `logits` is differentiable (white-box attacks possible). */
  readonly hasGradients: boolean;
  /** Synchronous logits (or log-probabilities) [N, classes]; absent for async-only formats (ONNX). */
  readonly logits?: (x: Tensor4D) => Tensor2D;
  /** The same scores for every format. The caller owns the result. */
  logitsAsync(x: Tensor4D): Promise<Tensor2D>;
}

/** vqguard's own classifier as a ScoringClassifier (sync, differentiable). */
export function bundleScoring(clf: Classifier, source: string, classNames: readonly string[] | null = null): ScoringClassifier {
  return {
    height: clf.config.height,
    width: clf.config.width,
    channels: clf.config.channels,
    classNames,
    source,
    hasGradients: true,
    logits: (x) => clf.logits(x),
    logitsAsync: async (x) => tf.tidy(() => clf.logits(x)),
  };
}
