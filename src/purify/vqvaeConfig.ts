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
  /**
   * Stride-2 stages of the encoder (and upsampling stages of the decoder): the latent grid is the
   * tile size / 2^downsamples. Absent = 2, the paper's layout (28x28 -> 7x7), and the meaning of a
   * missing key in bundles made before this option.
   */
  downsamples?: number;
}

/** The latent grid is kept at most this many cells on a side by the default number of stages. */
export const MAX_LATENT_SIDE = 16;
export const MAX_DOWNSAMPLES = 5;

/**
 * Default stride-2 stages for a tile: the paper's 2 up to 64 pixels a side (latent <= 16x16), then
 * one more per doubling, so the latent grid stays at most MAX_LATENT_SIDE a side (224 -> 4 stages,
 * a 14x14 grid); at most MAX_DOWNSAMPLES.
 */
export function defaultDownsamples(height: number, width: number): number {
  let s = 2;
  while (s < MAX_DOWNSAMPLES && Math.ceil(Math.max(height, width) / 2 ** s) > MAX_LATENT_SIDE) s++;
  return s;
}

/** Stride-2 stages of a config (2 when the key is absent). */
export function downsamplesOf(config: Pick<VqVaeConfig, 'downsamples'>): number {
  return config.downsamples ?? 2;
}

/** The latent grid [rows, cols] of a config at its tile size (after padding). */
export function latentGrid(config: Pick<VqVaeConfig, 'height' | 'width' | 'downsamples'>): [number, number] {
  const f = 2 ** downsamplesOf(config);
  return [paddedSize(config.height, downsamplesOf(config)) / f, paddedSize(config.width, downsamplesOf(config)) / f];
}

export function defaultVqVaeConfig(over: Partial<VqVaeConfig> & Pick<VqVaeConfig, 'height' | 'width' | 'channels'>): VqVaeConfig {
  const split = over.split ?? 1;
  const downsamples = over.downsamples ?? defaultDownsamples(over.height, over.width);
  if (!(Number.isInteger(downsamples) && downsamples >= 2 && downsamples <= MAX_DOWNSAMPLES)) {
    throw new Error(`VQ-VAE downsamples must be an integer from 2 to ${MAX_DOWNSAMPLES}, got ${over.downsamples}`);
  }
  const { downsamples: _given, ...rest } = over;
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
    ...rest,
    // Written only when it differs from the paper's 2, so 28x28 configs stay as they were.
    ...(downsamples !== 2 ? { downsamples } : {}),
  };
}

/** Model inputs are padded to a multiple of 2^downsamples (4 for the paper's two stride-2 convolutions) and cropped back. */
export function paddedSize(n: number, downsamples = 2): number {
  const m = 2 ** downsamples;
  return Math.ceil(n / m) * m;
}
