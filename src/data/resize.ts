/**
 * Image resizing for dataset specs such as `mnist?size=24` (the paper's public code resizes
 * MNIST to 24x24 with torchvision's `Resize`, i.e. PIL bilinear, which antialiases when it
 * shrinks). Implemented as PIL does: a separable triangle filter whose support is scaled by the
 * shrink factor, weights normalised per output pixel, pixel centres aligned. Pure JS, no TF.
 */
import type { ImageSet } from './dataset.ts';

/** Per output index: the first contributing input index and the normalised weights. */
function kernel(inSize: number, outSize: number): { start: number; w: Float64Array }[] {
  const scale = inSize / outSize;
  const support = Math.max(1, scale); // triangle half-width in input pixels
  const out: { start: number; w: Float64Array }[] = [];
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) * scale;
    const lo = Math.max(0, Math.floor(centre - support));
    const hi = Math.min(inSize, Math.ceil(centre + support));
    const w = new Float64Array(hi - lo);
    let sum = 0;
    for (let i = lo; i < hi; i++) {
      const v = Math.max(0, 1 - Math.abs((i + 0.5 - centre) / support));
      w[i - lo] = v;
      sum += v;
    }
    for (let k = 0; k < w.length; k++) w[k]! /= sum;
    out.push({ start: lo, w });
  }
  return out;
}

/** Every image of `set` resized to height x width (bilinear, antialiased when shrinking); values stay in [0,1]. */
export function resizeImageSet(set: ImageSet, height: number, width: number): ImageSet {
  if (!Number.isInteger(height) || !Number.isInteger(width) || height < 1 || width < 1) {
    throw new RangeError(`resize: size ${height}x${width} must be positive integers`);
  }
  if (height === set.height && width === set.width) return set;
  const { n, channels: c } = set;
  const kh = kernel(set.height, height), kw = kernel(set.width, width);
  const inSize = set.height * set.width * c, outSize = height * width * c;
  const images = new Float32Array(n * outSize);
  const rows = new Float64Array(set.height * width * c); // horizontal pass, one image at a time
  for (let i = 0; i < n; i++) {
    const src = i * inSize;
    for (let y = 0; y < set.height; y++) {
      for (let x = 0; x < width; x++) {
        const { start, w } = kw[x]!;
        for (let ch = 0; ch < c; ch++) {
          let acc = 0;
          for (let k = 0; k < w.length; k++) acc += w[k]! * set.images[src + (y * set.width + start + k) * c + ch]!;
          rows[(y * width + x) * c + ch] = acc;
        }
      }
    }
    const dst = i * outSize;
    for (let y = 0; y < height; y++) {
      const { start, w } = kh[y]!;
      for (let x = 0; x < width; x++) {
        for (let ch = 0; ch < c; ch++) {
          let acc = 0;
          for (let k = 0; k < w.length; k++) acc += w[k]! * rows[((start + k) * width + x) * c + ch]!;
          images[dst + (y * width + x) * c + ch] = Math.min(1, Math.max(0, acc));
        }
      }
    }
  }
  return { images, labels: set.labels.slice(), n, height, width, channels: c };
}
