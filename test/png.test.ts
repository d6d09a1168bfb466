import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { decodePngFast, encodePngFast, crc32 } from '../src/image/png.ts';
import { mulberry32 } from '../src/data/dataset.ts';

async function sharpRaw(png: Buffer, channels: 1 | 3): Promise<Buffer> {
  return sharp(png).toColourspace(channels === 1 ? 'b-w' : 'srgb').raw().toBuffer();
}

test('crc32 matches the PNG specification check value', () => {
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
});

test('fast PNG decode equals sharp on PNGs written by sharp with every filter', async () => {
  const rng = mulberry32(4);
  for (const channels of [1, 3] as const) {
    for (const [w, h] of [[28, 28], [14, 14], [7, 13], [1, 1], [64, 3]] as const) {
      const px = Buffer.from(Array.from({ length: w * h * channels }, () => Math.floor(rng() * 256)));
      for (const adaptiveFiltering of [false, true]) {
        const png = await sharp(px, { raw: { width: w, height: h, channels } }).toColourspace(channels === 1 ? 'b-w' : 'srgb').png({ adaptiveFiltering, compressionLevel: 9 }).toBuffer();
        const fast = decodePngFast(png, 1e7);
        assert.ok(fast, `fast path taken for ${w}x${h}x${channels}`);
        assert.deepEqual(Buffer.from(fast.data), await sharpRaw(png, channels), `${w}x${h}x${channels} filter=${adaptiveFiltering}`);
      }
    }
  }
});

test('fast PNG encode round-trips through sharp', async () => {
  const px = Uint8Array.from({ length: 28 * 28 }, (_, i) => (i * 7) % 256);
  const png = encodePngFast(px, 28, 28, 1);
  const back = await sharp(png).toColourspace('b-w').raw().toBuffer();
  assert.deepEqual(Buffer.from(back), Buffer.from(px));
  const meta = await sharp(png).metadata();
  assert.equal(meta.width, 28);
  assert.equal(meta.channels, 1);
});

test('anything unusual falls back to sharp (returns null)', async () => {
  const px = Buffer.alloc(16 * 16 * 4, 128);
  const rgba = await sharp(px, { raw: { width: 16, height: 16, channels: 4 } }).png().toBuffer();
  assert.equal(decodePngFast(rgba, 1e7), null, 'alpha');
  const palette = await sharp(Buffer.alloc(16 * 16 * 3, 9), { raw: { width: 16, height: 16, channels: 3 } }).png({ palette: true }).toBuffer();
  assert.equal(decodePngFast(palette, 1e7), null, 'palette');
  const grey16 = await sharp(Buffer.alloc(16 * 16 * 2, 1), { raw: { width: 16, height: 16, channels: 1, premultiplied: false } }).toColourspace('grey16').png().toBuffer();
  assert.equal(decodePngFast(grey16, 1e7), null, '16-bit');
  const ok = encodePngFast(new Uint8Array(28 * 28), 28, 28, 1);
  const bad = Buffer.from(ok);
  bad[bad.length - 20] = bad[bad.length - 20]! ^ 0xff; // inside IDAT: CRC mismatch
  assert.equal(decodePngFast(bad, 1e7), null, 'bad CRC');
  assert.equal(decodePngFast(ok.subarray(0, ok.length - 10), 1e7), null, 'truncated');
  assert.equal(decodePngFast(ok, 100), null, 'over the pixel limit');
});
