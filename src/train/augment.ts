/** Light augmentation for the classifier: random integer shifts (zero fill), per image. */
import type { ImageSet, Rng } from '../data/dataset.ts';

export function randomShift(set: ImageSet, maxShift: number, rng: Rng): Float32Array {
  const { n, height: h, width: w, channels: c } = set;
  const out = new Float32Array(set.images.length);
  const size = h * w * c;
  for (let i = 0; i < n; i++) {
    const dy = Math.floor(rng() * (2 * maxShift + 1)) - maxShift;
    const dx = Math.floor(rng() * (2 * maxShift + 1)) - maxShift;
    const base = i * size;
    for (let y = 0; y < h; y++) {
      const sy = y - dy;
      if (sy < 0 || sy >= h) continue;
      for (let x = 0; x < w; x++) {
        const sx = x - dx;
        if (sx < 0 || sx >= w) continue;
        for (let ch = 0; ch < c; ch++) out[base + (y * w + x) * c + ch] = set.images[base + (sy * w + sx) * c + ch]!;
      }
    }
  }
  return out;
}
