import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { DEFAULT_IMAGE_POLICY, decodeImage, encodeImage, type DecodeImageResult, type ImagePolicy } from '../src/image/decode.ts';
import { REASON_CODES } from '../src/records/reasons.ts';

const W = 28;
const H = 28;
const grey = Buffer.from(Array.from({ length: W * H }, (_, i) => (i * 7) % 256));
const rgb = Buffer.from(Array.from({ length: W * H * 3 }, (_, i) => (i * 13 + 5) % 256));
const fromRaw = (data: Buffer, width: number, height: number, channels: 1 | 2 | 3 | 4) => sharp(data, { raw: { width, height, channels } });
const target: Partial<ImagePolicy> = { width: W, height: H };

function ok(r: DecodeImageResult): Extract<DecodeImageResult, { ok: true }> {
  assert.ok(r.ok, `expected ok, got ${JSON.stringify(r)}`);
  return r;
}

function reason(r: DecodeImageResult): string {
  assert.equal(r.ok, false, 'expected a failure');
  assert.ok(!r.ok && (REASON_CODES as readonly string[]).includes(r.reason), `known reason: ${JSON.stringify(r)}`);
  return r.ok ? '' : r.reason;
}

function maxAbsDiff(a: Float32Array, expect: Buffer): number {
  assert.equal(a.length, expect.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - expect[i]! / 255));
  return m < 1e-6 ? 0 : m; // float32 vs float64 rounding
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body) >>> 0);
  return Buffer.concat([len, body, crc]);
}

test('28x28 grey PNG decodes to exact values; RGB PNG too', async () => {
  const png = await fromRaw(grey, W, H, 1).png().toBuffer();
  const r = ok(await decodeImage(png, target));
  assert.deepEqual([r.width, r.height, r.channels, r.format], [W, H, 1, 'png']);
  assert.deepEqual(r.pixels, Float32Array.from(grey, (v) => v / 255));

  const rgbPng = await fromRaw(rgb, W, H, 3).png().toBuffer();
  const c = ok(await decodeImage(rgbPng, { ...target, colour: 'rgb' }));
  assert.equal(c.channels, 3);
  assert.deepEqual(c.pixels, Float32Array.from(rgb, (v) => v / 255));
});

test('JPEG, WebP, TIFF and GIF decode', async () => {
  const smooth = Buffer.from(Array.from({ length: W * H }, (_, i) => Math.round(((i % W) / (W - 1)) * 255)));
  const cases: [string, Buffer, number][] = [
    ['jpeg', await fromRaw(smooth, W, H, 1).jpeg({ quality: 95 }).toBuffer(), 0.06],
    ['webp', await fromRaw(smooth, W, H, 1).webp({ lossless: true }).toBuffer(), 0],
    ['tiff', await fromRaw(smooth, W, H, 1).tiff({ compression: 'lzw' }).toBuffer(), 0],
    ['gif', await fromRaw(smooth, W, H, 1).gif().toBuffer(), 0.03],
  ];
  for (const [format, bytes, tol] of cases) {
    const r = ok(await decodeImage(bytes, target));
    assert.equal(r.format, format);
    assert.deepEqual([r.width, r.height, r.channels], [W, H, 1]);
    assert.ok(maxAbsDiff(r.pixels, smooth) <= tol, `${format} within ${tol}: ${maxAbsDiff(r.pixels, smooth)}`);
  }
});

test('resize policies: reject, fill, contain, cover', async () => {
  const wide = await sharp({ create: { width: 56, height: 28, channels: 3, background: '#ffffff' } }).png().toBuffer();
  assert.equal(reason(await decodeImage(wide, { ...target, resize: 'reject' })), 'size_mismatch');
  const fill = ok(await decodeImage(wide, { ...target, resize: 'fill' }));
  assert.deepEqual([fill.width, fill.height, fill.sourceWidth, fill.sourceHeight], [28, 28, 56, 28]);
  assert.ok(fill.pixels.every((v) => v === 1));
  const cover = ok(await decodeImage(wide, { ...target, resize: 'cover' }));
  assert.ok(cover.pixels.every((v) => v === 1));
  const contain = ok(await decodeImage(wide, { ...target, resize: 'contain' }));
  // 56x28 into 28x28: a 28x14 white band, black above and below.
  assert.equal(contain.pixels[0], 0);
  assert.equal(contain.pixels[14 * W + 14], 1);
  assert.equal(contain.pixels[27 * W + 27], 0);
  // No target size: native size kept.
  const native = ok(await decodeImage(wide, {}));
  assert.deepEqual([native.width, native.height], [56, 28]);
});

test('the default policy rejects another size or colour (size_mismatch, colour_mismatch), never resizes or converts silently', async () => {
  assert.equal(DEFAULT_IMAGE_POLICY.resize, 'reject');
  assert.equal(DEFAULT_IMAGE_POLICY.colourMismatch, 'reject');
  const big = await sharp({ create: { width: 224, height: 224, channels: 3, background: '#808080' } }).png().toBuffer();
  const r = await decodeImage(big, target); // policy: defaults + 28x28 grey
  assert.equal(reason(r), 'size_mismatch');
  assert.match(!r.ok ? r.detail : '', /224x224, the model takes 28x28/);
  // A colour image of the right size on a grey topic.
  const colour = await fromRaw(rgb, W, H, 3).png().toBuffer();
  const c = await decodeImage(colour, target);
  assert.equal(reason(c), 'colour_mismatch');
  assert.match(!c.ok ? c.detail : '', /image is colour .*channels differ by up to \d+\/255, grey allows 24/);
  // A 1-channel grey image on an rgb topic (sharp writes 1-channel raw data as RGB unless told b-w).
  const greyPng = await fromRaw(grey, W, H, 1).toColourspace('b-w').png().toBuffer();
  assert.equal((await sharp(greyPng).metadata()).channels, 1);
  assert.equal(reason(await decodeImage(greyPng, { ...target, colour: 'rgb' })), 'colour_mismatch');
  // Explicitly asked for: resized and converted, and the source size and channels are reported.
  const conv = ok(await decodeImage(big, { ...target, resize: 'fill', colourMismatch: 'convert' }));
  assert.deepEqual([conv.width, conv.height, conv.channels, conv.sourceWidth, conv.sourceHeight, conv.sourceChannels], [28, 28, 1, 224, 224, 3]);
  const same = ok(await decodeImage(greyPng, target));
  assert.deepEqual([same.sourceWidth, same.sourceHeight, same.sourceChannels], [28, 28, 1]);
});

test('a grey image stored as RGB counts as grey (channels within 24/255); a faint tint beyond that is colour', async () => {
  // Every pixel R = G = B, except a per-pixel jitter of up to `d` levels on the blue channel.
  const stored = (d: number) => Buffer.from(Array.from({ length: W * H * 3 }, (_, i) => {
    const v = grey[Math.floor(i / 3)]!;
    return i % 3 === 2 ? Math.min(255, v + ((Math.floor(i / 3) * 5) % (d + 1))) : v;
  }));
  for (const [d, greyish] of [[0, true], [24, true], [25, false], [80, false]] as const) {
    const png = await fromRaw(stored(d), W, H, 3).png().toBuffer();
    const r = await decodeImage(png, target);
    if (greyish) {
      const g = ok(r);
      assert.equal(g.channels, 1, `spread ${d}`);
      assert.equal(g.sourceChannels, 3);
      if (d === 0) assert.deepEqual(g.pixels, Float32Array.from(grey, (v) => v / 255)); // exact when R = G = B
      else assert.ok(maxAbsDiff(g.pixels, grey) <= d / 3 / 255 + 1e-6, `mean of the channels: ${maxAbsDiff(g.pixels, grey)}`);
    } else {
      assert.equal(reason(r), 'colour_mismatch', `spread ${d}`);
    }
  }
  // A grey JPEG saved in RGB (chroma subsampling noise) is grey too; so is an RGB image with alpha.
  const smooth = Buffer.from(Array.from({ length: W * H }, (_, i) => Math.round(((i % W) / (W - 1)) * 255)));
  const jpeg = await fromRaw(Buffer.from(Array.from({ length: W * H * 3 }, (_, i) => smooth[Math.floor(i / 3)]!)), W, H, 3).jpeg({ quality: 80 }).toBuffer();
  assert.equal((await sharp(jpeg).metadata()).channels, 3);
  const j = ok(await decodeImage(jpeg, target));
  assert.ok(maxAbsDiff(j.pixels, smooth) <= 0.06);
  // On an rgb topic a grey-looking RGB image is simply RGB (not a mismatch).
  const asRgb = ok(await decodeImage(await fromRaw(stored(0), W, H, 3).png().toBuffer(), { ...target, colour: 'rgb' }));
  assert.equal(asRgb.channels, 3);
});

test('16-bit PNG: convert to 8 bits, or reject', async () => {
  const u16 = new Uint16Array(W * H);
  for (let i = 0; i < u16.length; i++) u16[i] = grey[i]! * 257;
  const png16 = await sharp(u16, { raw: { width: W, height: H, channels: 1 } }).toColourspace('grey16').png().toBuffer();
  assert.equal((await sharp(png16).metadata()).bitsPerSample, 16);
  const r = ok(await decodeImage(png16, target));
  assert.deepEqual(r.pixels, Float32Array.from(grey, (v) => v / 255));
  assert.equal(reason(await decodeImage(png16, { ...target, highBitDepth: 'reject' })), 'high_bit_depth');
});

test('CMYK JPEG: convert to sRGB, or reject', async () => {
  const cmyk = await sharp({ create: { width: W, height: H, channels: 3, background: { r: 200, g: 30, b: 60 } } }).toColourspace('cmyk').jpeg().toBuffer();
  assert.equal((await sharp(cmyk).metadata()).space, 'cmyk');
  const r = ok(await decodeImage(cmyk, { ...target, colour: 'rgb' }));
  assert.equal(r.channels, 3);
  assert.ok(Math.abs(r.pixels[0]! - 200 / 255) < 0.1 && Math.abs(r.pixels[1]! - 30 / 255) < 0.1 && Math.abs(r.pixels[2]! - 60 / 255) < 0.1, `${r.pixels.subarray(0, 3)}`);
  assert.equal(reason(await decodeImage(cmyk, { ...target, cmyk: 'reject' })), 'cmyk_not_allowed');
});

test('alpha PNG: flatten onto black, or reject', async () => {
  const rgba = Buffer.alloc(W * H * 4);
  for (let i = 0; i < W * H; i++) rgba.set([255, 255, 255, i < W * H / 2 ? 0 : 255], i * 4); // top half transparent white
  const png = await fromRaw(rgba, W, H, 4).png().toBuffer();
  const r = ok(await decodeImage(png, target));
  assert.equal(r.channels, 1);
  assert.equal(r.pixels[0], 0);
  assert.equal(r.pixels[W * H - 1], 1);
  assert.equal(reason(await decodeImage(png, { ...target, alpha: 'reject' })), 'alpha_not_allowed');
});

test('animated GIF: first frame, or reject', async () => {
  const frames = Buffer.alloc(W * H * 2 * 3);
  frames.fill(255, 0, W * H * 3); // frame 0 white, frame 1 black
  const gif = await sharp(frames, { raw: { width: W, height: H * 2, channels: 3, pageHeight: H } }).gif().toBuffer();
  assert.equal((await sharp(gif).metadata()).pages, 2);
  const r = ok(await decodeImage(gif, target));
  assert.deepEqual([r.width, r.height], [W, H]);
  assert.ok(r.pixels.every((v) => v === 1));
  assert.equal(reason(await decodeImage(gif, { ...target, animated: 'reject' })), 'animated_image');
});

test('a tiny PNG declaring 50,000 x 50,000 is refused from its header, fast', async () => {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(50_000, 0);
  ihdr.writeUInt32BE(50_000, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  const bomb = Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.alloc(1000))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
  assert.ok(bomb.length < 200);
  const t0 = performance.now();
  const r = await decodeImage(bomb, target);
  assert.equal(reason(r), 'too_many_pixels');
  assert.ok(performance.now() - t0 < 1000, `took ${performance.now() - t0} ms`);
});

test('truncated PNG and JPEG -> corrupt_image', async () => {
  const png = await fromRaw(grey, W, H, 1).png().toBuffer();
  const jpg = await fromRaw(grey, W, H, 1).jpeg().toBuffer();
  for (const b of [png, jpg]) {
    for (const frac of [0.5, 0.9]) {
      assert.equal(reason(await decodeImage(b.subarray(0, Math.floor(b.length * frac)), target)), 'corrupt_image', `${frac}`);
    }
  }
  // TIFF keeps its directory at the end: a truncated one has no readable header.
  const tif = await fromRaw(grey, W, H, 1).tiff({ compression: 'lzw' }).toBuffer();
  assert.equal(reason(await decodeImage(tif.subarray(0, Math.floor(tif.length * 0.3)), target)), 'corrupt_image');
  // A PNG with a damaged IDAT (CRC mismatch).
  const bad = Buffer.from(png);
  bad[bad.length - 20] = bad[bad.length - 20]! ^ 0xff;
  assert.equal(reason(await decodeImage(bad, target)), 'corrupt_image');
});

test('random bytes, zero bytes, SVG, oversize', async () => {
  const rnd = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 193 + 71) % 251));
  assert.equal(reason(await decodeImage(rnd, target)), 'unsupported_format');
  assert.equal(reason(await decodeImage(Buffer.alloc(0), target)), 'empty');
  // PNG magic followed by garbage.
  assert.equal(reason(await decodeImage(Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), rnd]), target)), 'corrupt_image');

  const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><rect width="28" height="28" fill="white"/></svg>');
  assert.equal(reason(await decodeImage(svg, target)), 'format_not_allowed');
  const allowed = ok(await decodeImage(svg, { ...target, formats: ['svg'] }));
  assert.ok(allowed.pixels.every((v) => v === 1));
  const png = await fromRaw(grey, W, H, 1).png().toBuffer();
  assert.equal(reason(await decodeImage(png, { ...target, formats: ['jpeg'] })), 'format_not_allowed');

  const r = await decodeImage(png, { ...target, maxBytes: png.length - 1 });
  assert.equal(reason(r), 'too_large_bytes');
  assert.ok(!r.ok && !r.detail.includes(png.toString('latin1').slice(0, 8)));
  assert.equal(reason(await decodeImage(png, { ...target, maxPixels: W * H - 1 })), 'too_many_pixels');
});

test('encode -> decode: PNG exact (grey and RGB); every output format decodes', async () => {
  const g = Float32Array.from(grey, (v) => v / 255);
  const png = await encodeImage(g, W, H, 1);
  assert.deepEqual(ok(await decodeImage(png, target)).pixels, g);
  const c = Float32Array.from(rgb, (v) => v / 255);
  assert.deepEqual(ok(await decodeImage(await encodeImage(c, W, H, 3, 'png'), { ...target, colour: 'rgb' })).pixels, c);
  for (const f of ['jpeg', 'webp', 'tiff', 'gif'] as const) {
    const r = ok(await decodeImage(await encodeImage(g, W, H, 1, f), target));
    assert.equal(r.format, f);
  }
  await assert.rejects(encodeImage(new Float32Array(3), W, H, 1), /values for 28x28x1/);
  await assert.rejects(encodeImage(Float32Array.from([NaN]), 1, 1, 1), /NaN/);
});
