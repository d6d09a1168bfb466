/**
 * A purification pipeline is a sequence of stages applied left to right, written
 * `full`, `split2`, `split2>full`, `full>split2`, `split4>split2>full`, ...
 *   - `full` (= `split1`): the whole-image VQ-VAE;
 *   - `split<k>`: cut into a k x k grid, purify every tile of the batch as one batch with the
 *     tile VQ-VAE trained for that k, stitch back.
 * Other stage kinds (e.g. Feature Squeezing) plug in through the same Stage interface.
 */
import type { Tensor4D } from '@tensorflow/tfjs-node';
import { tf } from '../backend/tf.ts';
import { splitTiles, stitchTiles } from './split.ts';
import type { VqVae } from './vqvae.ts';

export interface Stage {
  name: string;
  /** Differentiable (straight-through at quantisers) purification [N,H,W,C] -> same shape. */
  apply(x: Tensor4D): Tensor4D;
  flopsPerImage(h: number, w: number): number;
}

export interface Pipeline {
  name: string;
  stages: Stage[];
  apply(x: Tensor4D): Tensor4D;
  flopsPerImage(h: number, w: number): number;
}

export type StageSpec = { kind: 'split'; k: number } | { kind: 'other'; name: string };

const STAGE_RE = /^(full|split([1-9][0-9]?))$/;

export function parseStage(s: string, extra: readonly string[] = []): StageSpec {
  const t = s.trim();
  if (extra.includes(t)) return { kind: 'other', name: t };
  const m = STAGE_RE.exec(t);
  if (!m) {
    throw new Error(
      `unknown pipeline stage "${t}": expected full, split<k> (k = 1..99)${extra.length ? ` or one of ${extra.join(', ')}` : ''}`,
    );
  }
  return { kind: 'split', k: m[1] === 'full' ? 1 : Number(m[2]) };
}

export function parsePipeline(spec: string, extra: readonly string[] = []): StageSpec[] {
  const parts = spec.split('>');
  if (parts.length === 0 || parts.some((p) => p.trim() === '')) throw new Error(`empty stage in pipeline "${spec}"`);
  return parts.map((p) => parseStage(p, extra));
}

export function vqStage(k: number, model: VqVae): Stage {
  if (model.config.split !== k) {
    throw new Error(`stage split${k} needs a purifier trained for split ${k}, got one for split ${model.config.split}`);
  }
  return {
    name: k === 1 ? 'full' : `split${k}`,
    apply: (x) =>
      tf.tidy(() => {
        const [, h, w] = x.shape;
        const tiles = splitTiles(x, k);
        return stitchTiles(model.forward(tiles).recon, k, h, w);
      }),
    flopsPerImage: (h, w) => k * k * model.flopsPerImage(Math.ceil(h / k), Math.ceil(w / k)),
  };
}

export function composePipeline(name: string, stages: Stage[]): Pipeline {
  return {
    name,
    stages,
    apply: (x) => tf.tidy(() => stages.reduce((acc, s) => s.apply(acc), x)),
    flopsPerImage: (h, w) => stages.reduce((sum, s) => sum + s.flopsPerImage(h, w), 0),
  };
}
