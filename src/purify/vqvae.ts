/**
 * VQ-VAE purifier (van den Oord et al. 2017; architecture after the paper's Table 1).
 *
 * Encoder: conv 4x4/2 (128) - relu - conv 4x4/2 (128) - res 3x3 - res 1x1 - relu - 1x1 to D.
 * Quantiser: K codes of dimension D, nearest neighbour, straight-through gradient.
 * Decoder: 1x1 from D - res 1x1 - res 3x3 - relu - convT 2x2/2 (128) - relu - convT 3x3/2 (C) - sigmoid.
 *
 * The codebook is updated by exponential moving averages (decay 0.99) rather than by a
 * codebook loss: with EMA the codes track the encoder outputs directly, which together with
 * data-dependent initialisation and dead-code restarts avoids the collapse to one code seen
 * in the reference run (see reference-findings.md). The loss is MSE + beta * commitment.
 *
 * Larger tiles get more stride-2 stages (config.downsamples, default from the tile size: 2 up to
 * 64x64, 4 at 224x224; see defaultDownsamples): each extra stage is one more conv 4x4/2 (F) after
 * enc/conv2 and one more convT 2x2/2 (F) before dec/up2, so at 2 stages the layout and the
 * parameter names are the paper's.
 *
 * Any input size round-trips: inputs are zero-padded (centred) to a multiple of 2^downsamples and
 * the output is cropped back.
 */
import { tf } from '../backend/tf.ts';
import type { Tensor, Tensor2D, Tensor4D, Variable } from '@tensorflow/tfjs-node';
import { ParamStore, seedStream } from '../nn/params.ts';
import { addConv, addConvT, conv, convT, residual } from '../nn/layers.ts';
import { downsamplesOf, paddedSize, type VqVaeConfig } from './vqvaeConfig.ts';

export interface QuantizeResult {
  /** Quantised vectors [M, D] (straight-through: gradient flows to the encoder output). */
  q: Tensor2D;
  indices: Tensor;
}

export class VqVae {
  readonly params = new ParamStore();
  readonly codebook: Variable;
  readonly emaCount: Variable;
  readonly emaSum: Variable;
  initialised = false;

  /** Stride-2 stages (2 = the paper's layout). */
  readonly downsamples: number;

  constructor(readonly config: VqVaeConfig, seed = 1) {
    const { filters: f, channels: c, embeddingDim: d, codebookSize: k } = config;
    this.downsamples = downsamplesOf(config);
    const next = seedStream(seed);
    const p = this.params;
    addConv(p, 'enc/conv1', 4, c, f, next());
    addConv(p, 'enc/conv2', 4, f, f, next());
    for (let i = 3; i <= this.downsamples; i++) addConv(p, `enc/conv${i}`, 4, f, f, next());
    addConv(p, 'enc/res3', 3, f, f, next());
    addConv(p, 'enc/res1', 1, f, f, next());
    addConv(p, 'enc/pre', 1, f, d, next());
    addConv(p, 'dec/post', 1, d, f, next());
    addConv(p, 'dec/res1', 1, f, f, next());
    addConv(p, 'dec/res3', 3, f, f, next());
    addConvT(p, 'dec/up1', 2, f, f, next());
    for (let i = 3; i <= this.downsamples; i++) addConvT(p, `dec/up1_${i}`, 2, f, f, next());
    addConvT(p, 'dec/up2', 3, f, c, next(), config.outputBiasInit);
    this.codebook = p.add('codebook', tf.randomUniform([k, d], -1 / k, 1 / k, 'float32', next()), false);
    this.emaCount = p.add('ema/count', tf.zeros([k]), false);
    this.emaSum = p.add('ema/sum', tf.zeros([k, d]), false);
  }

  /** Pads [N,H,W,C] to multiples of 2^downsamples (centred zeros). */
  pad(x: Tensor4D): { xp: Tensor4D; top: number; left: number } {
    const [, h, w] = x.shape;
    const ph = paddedSize(h, this.downsamples) - h;
    const pw = paddedSize(w, this.downsamples) - w;
    if (ph === 0 && pw === 0) return { xp: x, top: 0, left: 0 };
    const top = Math.floor(ph / 2);
    const left = Math.floor(pw / 2);
    return { xp: tf.pad(x, [[0, 0], [top, ph - top], [left, pw - left], [0, 0]]), top, left };
  }

  encode(xp: Tensor4D): Tensor4D {
    const p = this.params;
    let h = tf.relu(conv(p, 'enc/conv1', xp, 2));
    h = tf.relu(conv(p, 'enc/conv2', h, 2));
    for (let i = 3; i <= this.downsamples; i++) h = tf.relu(conv(p, `enc/conv${i}`, h, 2));
    h = residual(p, 'enc/res3', h);
    h = residual(p, 'enc/res1', h);
    return conv(p, 'enc/pre', tf.relu(h), 1);
  }

  decode(zq: Tensor4D, outH: number, outW: number): Tensor4D {
    const p = this.params;
    let h = conv(p, 'dec/post', zq, 1);
    h = residual(p, 'dec/res1', h);
    h = residual(p, 'dec/res3', h);
    // Upsampling stages from the latent grid back to outH/2 x outW/2; the last one (dec/up2) to outH x outW.
    const s = this.downsamples;
    h = tf.relu(convT(p, 'dec/up1', tf.relu(h), 2, [outH / 2 ** (s - 1), outW / 2 ** (s - 1)]));
    for (let i = 3; i <= s; i++) h = tf.relu(convT(p, `dec/up1_${i}`, h, 2, [outH / 2 ** (s + 1 - i), outW / 2 ** (s + 1 - i)]));
    return tf.sigmoid(convT(p, 'dec/up2', h, 2, [outH, outW]));
  }

  /** Squared distances [M, K] between vectors [M, D] and the codebook. */
  distances(flat: Tensor2D): Tensor2D {
    const cb = this.codebook as unknown as Tensor2D;
    const zz = tf.sum(tf.square(flat), 1, true);
    const cc = tf.sum(tf.square(cb), 1);
    return tf.add(tf.sub(zz, tf.mul(2, tf.matMul(flat, cb, false, true))), cc) as Tensor2D;
  }

  /**
   * Nearest-code quantisation with a straight-through gradient: the forward value is the
   * code, the backward pass hands dy to the encoder output unchanged. The argmin and the
   * lookup run inside the custom-gradient forward, so the integer indices never enter the
   * gradient tape.
   */
  quantize(flat: Tensor2D, temperature = 0): QuantizeResult {
    let indices: Tensor | null = null;
    const q = tf.customGrad((...args) => {
      const ze = args[0] as Tensor2D;
      // temperature > 0: stochastic quantisation, code k drawn with probability
      // proportional to exp(-||ze - e_k||^2 / temperature) (nearest code as temperature -> 0).
      indices = tf.keep(
        temperature > 0
          ? tf.tidy(() => tf.reshape(tf.multinomial(tf.div(tf.neg(this.distances(ze)), temperature) as Tensor2D, 1), [-1]))
          : tf.argMin(this.distances(ze), 1),
      );
      return { value: tf.gather(this.codebook, indices), gradFunc: (dy: Tensor) => dy };
    })(flat) as Tensor2D;
    // Re-own the indices in the caller's scope so an enclosing tidy() disposes them.
    const owned = tf.clone(indices!);
    (indices as unknown as Tensor).dispose();
    return { q, indices: owned };
  }

  /**
   * Full differentiable pass (straight-through at the quantiser). Used for training and by
   * the adaptive BPDA attack. Returns the reconstruction cropped to the input size.
   * `temperature` > 0 samples the codes (stochastic quantisation, see quantize).
   */
  forward(x: Tensor4D, temperature = 0): { recon: Tensor4D; ze: Tensor2D; qConst: Tensor2D; indices: Tensor } {
    const [n, h, w] = x.shape;
    const { xp, top, left } = this.pad(x);
    const [, hp, wp] = xp.shape;
    const ze4 = this.encode(xp);
    const [, gh, gw, d] = ze4.shape;
    const ze = tf.reshape(ze4, [-1, d]) as Tensor2D;
    const { q, indices } = this.quantize(ze, temperature);
    const zq = tf.reshape(q, [n, gh, gw, d]) as Tensor4D;
    let recon = this.decode(zq, hp, wp);
    if (hp !== h || wp !== w) recon = tf.slice(recon, [0, top, left, 0], [n, h, w, -1]);
    // q as a constant (no gradient path) for the commitment loss ||ze - sg(q)||^2.
    const qConst = tf.gather(this.codebook, indices) as Tensor2D;
    return { recon, ze, qConst, indices };
  }

  /** Inference: purify a batch [N,H,W,C] -> [N,H,W,C]. */
  reconstruct(x: Tensor4D): Tensor4D {
    return tf.tidy(() => this.forward(x).recon);
  }

  /** Initialise codes from encoder outputs of a batch (data-dependent init). */
  initCodebook(x: Tensor4D, seed: number): void {
    tf.tidy(() => {
      const { xp } = this.pad(x);
      const ze = tf.reshape(this.encode(xp), [-1, this.config.embeddingDim]);
      const m = ze.shape[0]!;
      const k = this.config.codebookSize;
      const idx = tf.randomUniform([k], 0, m, 'int32', seed);
      const codes = tf.gather(ze, idx);
      this.codebook.assign(codes);
      this.emaSum.assign(codes);
      this.emaCount.assign(tf.ones([k]));
    });
    this.initialised = true;
  }

  /**
   * EMA codebook update from one batch's encoder outputs and assignments, then dead-code
   * restart: codes whose EMA usage is below the threshold get a random encoder output.
   * Returns the batch perplexity and the number of codes restarted.
   */
  emaUpdate(ze: Tensor2D, indices: Tensor, seed: number): { perplexity: number; restarted: number } {
    const { emaDecay: decay, codebookSize: k, deadCodeThreshold } = this.config;
    const res = tf.tidy(() => {
      const onehot = tf.oneHot(indices as Tensor, k).toFloat() as Tensor2D;
      const counts = tf.sum(onehot, 0);
      const sums = tf.matMul(onehot, ze, true, false);
      const newCount = tf.add(tf.mul(this.emaCount, decay), tf.mul(counts, 1 - decay));
      const newSum = tf.add(tf.mul(this.emaSum, decay), tf.mul(sums, 1 - decay));
      // Laplace smoothing keeps codes with tiny counts finite.
      const n = tf.sum(newCount);
      const eps = 1e-5;
      const smoothed = tf.mul(tf.div(tf.add(newCount, eps), tf.add(n, k * eps)), n);
      let codes = tf.div(newSum, tf.expandDims(smoothed, 1));
      // Dead-code restart.
      const dead = tf.less(newCount, deadCodeThreshold);
      const m = ze.shape[0]!;
      const picks = tf.gather(ze, tf.randomUniform([k], 0, m, 'int32', seed));
      const dead2 = tf.expandDims(dead, 1);
      codes = tf.where(tf.tile(dead2, [1, codes.shape[1]!]), picks, codes);
      const finalSum = tf.where(tf.tile(dead2, [1, codes.shape[1]!]), picks, newSum);
      const finalCount = tf.where(dead, tf.onesLike(newCount), newCount);
      this.codebook.assign(codes);
      this.emaSum.assign(finalSum);
      this.emaCount.assign(finalCount);
      const p = tf.div(counts, m);
      const perplexity = tf.exp(tf.neg(tf.sum(tf.mul(p, tf.log(tf.add(p, 1e-10))))));
      return tf.stack([perplexity, tf.sum(tf.cast(dead, 'float32'))]);
    });
    const [perplexity, restarted] = res.dataSync();
    res.dispose();
    return { perplexity: perplexity!, restarted: restarted! };
  }

  /** FLOPs per image of one reconstruction at the given input size (multiply-add = 2). */
  flopsPerImage(h = this.config.height, w = this.config.width): number {
    const { filters: f, channels: c, embeddingDim: d, codebookSize: k } = this.config;
    const s = this.downsamples;
    const hp = paddedSize(h, s), wp = paddedSize(w, s);
    const area = (stage: number) => (hp / 2 ** stage) * (wp / 2 ** stage);
    const a1 = area(1), aL = area(s); // after the first stride-2 conv; the latent grid
    const convF = (a: number, kk: number, cin: number, cout: number) => 2 * a * kk * kk * cin * cout;
    let extra = 0; // stages 3..s: conv 4x4/2 down to area(i), convT 2x2/2 up from area(i)
    for (let i = 3; i <= s; i++) extra += convF(area(i), 4, f, f) + convF(area(i), 2, f, f);
    return (
      convF(a1, 4, c, f) + convF(area(2), 4, f, f) + convF(aL, 3, f, f) + convF(aL, 1, f, f) + convF(aL, 1, f, d) +
      2 * aL * k * d + // codebook distances
      convF(aL, 1, d, f) + convF(aL, 1, f, f) + convF(aL, 3, f, f) +
      convF(area(2), 2, f, f) + // convT 2x2 (dec/up1): each input pixel feeds a 2x2 output patch
      extra +
      convF(a1, 3, f, c) // convT 3x3 stride 2: each input pixel feeds a 3x3 patch
    );
  }

  dispose(): void {
    this.params.dispose();
  }
}
