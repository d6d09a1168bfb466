/**
 * What a pipeline stage kind declares (modelled on Benthos processors: one module registers a
 * name pattern, an option schema, the bundles it needs and a constructor). This file and every
 * declaration in this folder load neither TensorFlow nor sharp: the compute backend reaches a
 * stage only through `StageContext.tf` when the stage is built, so validating a configuration
 * stays cheap.
 */
import type { Tensor4D } from '@tensorflow/tfjs-node';
import type { z } from 'zod';

/** The TensorFlow.js namespace a stage computes with (passed in; never imported here). */
export type TF = typeof import('@tensorflow/tfjs-node');

/** `clean` (default) or `adv` (`adv:` prefix): which trained purifiers a pipeline uses. */
export type Variant = 'clean' | 'adv';

export interface Stage {
  name: string;
  /** Differentiable (straight-through at quantisers) purification [N,H,W,C] -> same shape. */
  apply(x: Tensor4D): Tensor4D;
  flopsPerImage(h: number, w: number): number;
  /** Tile grid this stage works on (k of split<k>), for the detector's worst-tile score. */
  grid?: number;
}

/** What a stage's constructor may use: the backend and the model set's bundles (loaded once). */
export interface StageContext {
  tf: TF;
  variant: Variant;
  /** Loads (or returns the cached) bundle folder `<models>/<dir>`; its sha256 is checked. */
  bundle<M>(dir: string): M;
}

export interface StageKind<O = unknown> {
  /** Short identifier of the kind, e.g. `vqvae`, `bits`. */
  kind: string;
  /** How names of this kind are written, for error messages and --help, e.g. `bits<n> (n = 1..8)`. */
  syntax: string;
  description: string;
  /** The name pattern: its named groups are the raw options (strings), checked by `options`. */
  pattern: RegExp;
  /** Option schema: turns the pattern's groups into typed options (or reports what is wrong). */
  options: z.ZodType<O, z.ZodTypeDef, unknown>;
  /** Bundle folders (under the model set) the stage needs with these options and variant. */
  bundles(o: O, variant: Variant): string[];
  /** The constructor. */
  create(name: string, o: O, ctx: StageContext): Stage;
}

/** Purifier bundle folder for a k x k split: purifier-split<k>[-adv]. */
export function purifierDirName(k: number, variant: Variant): string {
  return `purifier-split${k}${variant === 'adv' ? '-adv' : ''}`;
}
