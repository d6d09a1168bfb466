/** sharp vs the raw-pixel PNG fast path on one 28x28 grey image, sequential calls. */
import sharp from 'sharp';
import { decodePngFast, encodePngFast } from '../image/png.ts';

async function perCallUs(f: () => unknown, n: number): Promise<number> {
  for (let i = 0; i < 100; i++) await f();
  const t = performance.now();
  for (let i = 0; i < n; i++) await f();
  return ((performance.now() - t) / n) * 1000;
}

export async function benchPng(n = 2000) {
  const u8 = Uint8Array.from({ length: 784 }, (_, i) => (i * 37) % 256);
  const png = encodePngFast(u8, 28, 28, 1);
  const decodeSharpUs = await perCallUs(async () => {
    await sharp(png, { failOn: 'error' }).metadata();
    await sharp(png, { failOn: 'error' }).toColourspace('b-w').raw().toBuffer();
  }, n);
  const decodeFastUs = await perCallUs(() => decodePngFast(png, 1e7), n);
  const encodeSharpUs = await perCallUs(() => sharp(Buffer.from(u8), { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer(), n);
  const encodeFastUs = await perCallUs(() => encodePngFast(u8, 28, 28, 1), n);
  return { images: n, decodeSharpUs, decodeFastUs, encodeSharpUs, encodeFastUs };
}
