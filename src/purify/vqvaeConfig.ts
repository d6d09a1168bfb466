/** Architecture hyper-parameters of a VQ-VAE purifier (after the paper's Table 1). */
export interface VqVaeConfig {
  kind: 'vqvae';
  /** Tile grid this model was trained for: 1 = whole image (No-Split), 2 = 4-Split, ... */
  split: number;
  /** Input tile height/width/channels the model was trained on (e.g. 28x28x1, 14x14x1). */
  height: number;
  width: number;
  channels: number;
  filters: number;
  embeddingDim: number;
  codebookSize: number;
  commitmentBeta: number;
  emaDecay: number;
  /** A code whose EMA usage falls below this many assignments per batch is re-seeded. */
  deadCodeThreshold: number;
  /** Initial bias of the last transposed conv: about the logit of the mean pixel. */
  outputBiasInit: number;
}

export function defaultVqVaeConfig(over: Partial<VqVaeConfig> & Pick<VqVaeConfig, 'height' | 'width' | 'channels'>): VqVaeConfig {
  const split = over.split ?? 1;
  return {
    kind: 'vqvae',
    split,
    filters: 128,
    embeddingDim: 64,
    codebookSize: split === 1 ? 900 : 300,
    commitmentBeta: 0.25,
    emaDecay: 0.99,
    deadCodeThreshold: 1.0,
    outputBiasInit: -2,
    ...over,
  };
}

/** Model inputs are padded to a multiple of 4 (two stride-2 convolutions) and cropped back. */
export function paddedSize(n: number): number {
  return Math.ceil(n / 4) * 4;
}
