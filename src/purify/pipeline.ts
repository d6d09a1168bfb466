/**
 * A purification pipeline: stages applied left to right (`split2>full` runs the tile purifier
 * first). The stage grammar, the stage kinds and their constructors live in ./stages/ (the
 * stage registry); this module only composes built stages.
 */
import type { Tensor4D } from '@tensorflow/tfjs-node';
import { tf } from '../backend/tf.ts';
import type { Stage } from './stages/types.ts';

export type { Stage } from './stages/types.ts';

export interface Pipeline {
  name: string;
  stages: Stage[];
  apply(x: Tensor4D): Tensor4D;
  flopsPerImage(h: number, w: number): number;
}

export function composePipeline(name: string, stages: Stage[]): Pipeline {
  return {
    name,
    stages,
    apply: (x) => tf.tidy(() => stages.reduce((acc, s) => s.apply(acc), x)),
    flopsPerImage: (h, w) => stages.reduce((sum, s) => sum + s.flopsPerImage(h, w), 0),
  };
}
