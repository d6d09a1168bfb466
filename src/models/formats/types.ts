/** The interface every classifier format offers vqguard. */
import type { Tensor2D, Tensor4D } from '@tensorflow/tfjs-node';
import type { ClassifierDeclaration, ClassifierFormat } from './declaration.ts';

export interface LoadedClassifier {
  readonly format: ClassifierFormat;
  readonly declaration: ClassifierDeclaration;
  readonly height: number;
  readonly width: number;
  readonly channels: 1 | 3;
  readonly classes: readonly string[];
  /** True when `logits` is a differentiable TF.js function (white-box attacks possible). */
  readonly hasGradients: boolean;
  /**
   * Class probabilities [N, classes] for images x [N,H,W,C] in [0,1] (vqguard's convention);
   * the declared range/layout conversion is applied inside. The caller owns the result.
   */
  probabilities(x: Tensor4D): Promise<Tensor2D>;
  /**
   * Differentiable scores whose softmax is the probabilities (the model's logits, or log p when
   * it returns probabilities). Only where hasGradients; otherwise undefined. Synchronous, so
   * it can sit inside tf.grad / tf.tidy like vqguard's own Classifier.logits.
   */
  readonly logits?: (x: Tensor4D) => Tensor2D;
  /**
   * Synchronous forward pass, same scores as `logits` but not necessarily differentiable: the
   * TF.js formats, vqguard bundles and SavedModels have it (for code that scores inside
   * tf.tidy, like the Detector); ONNX runs only asynchronously (undefined).
   */
  readonly forward?: (x: Tensor4D) => Tensor2D;
  /** Free the model (native sessions, weights). */
  dispose(): void;
}

/** A tensor the model exposes: its name and static shape (-1 or null for unknown dimensions). */
export interface TensorInfo {
  name: string;
  shape: (number | null)[] | null;
}

/** What a format's opener returns; the common loader (load.ts) checks it against the declaration. */
export interface FormatModel {
  inputs: TensorInfo[];
  outputs: TensorInfo[];
  hasGradients: boolean;
  /** Run the model on its own input (range/layout already converted); returns the named output. */
  run(modelInput: Tensor4D, inputName: string, outputName: string): Promise<Tensor2D>;
  /** Differentiable, synchronous run (gradient formats only). */
  runSync?: (modelInput: Tensor4D, inputName: string, outputName: string) => Tensor2D;
  /** Synchronous, not necessarily differentiable run (defaults to runSync). */
  forwardSync?: (modelInput: Tensor4D, inputName: string, outputName: string) => Tensor2D;
  dispose(): void;
}
