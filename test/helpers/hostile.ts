/**
 * Hostile image inputs built with sharp (and by hand where sharp will not write them), for the
 * hostile-input, fuzz and security tests. Each is small on the wire; a few declare huge sizes.
 */
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { pngChunk } from '../../src/image/png.ts';
import { mulberry32 } from '../../src/data/dataset.ts';

/** The strict policy: every kind of hostile image has its own reason. */
export const STRICT_IMAGE = {
  maxBytes: 16_384,
  maxPixels: 1_000_000,
  formats: ['png', 'jpeg', 'gif', 'tiff'],
  colour: 'grey',
  width: 28,
  height: 28,
  resize: 'fill',
  colourMismatch: 'convert',
  alpha: 'reject',
  animated: 'reject',
  highBitDepth: 'reject',
  cmyk: 'reject',
};

export { pngChunk };

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * A decompression bomb: a valid 8-bit greyscale PNG header declaring `width` x `height`, whose IDAT
 * would inflate to width*height bytes of zeros (only the first `rows` rows are really present,
 * so the file stays tiny; a decoder that trusts the header allocates gigabytes).
 */
export function pngBomb(width = 50_000, height = 50_000, rows = 64): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  const idat = deflateSync(Buffer.alloc((width + 1) * rows), { level: 9 });
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', idat), pngChunk('IEND', Buffer.alloc(0))]);
}

/** Overwrites the size in a JPEG's first SOFn marker (a real, small JPEG that declares `width` x `height`). */
export function jpegWithDeclaredSize(jpeg: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(jpeg);
  let i = 2;
  while (i + 4 < out.length) {
    if (out[i] !== 0xff) throw new Error(`no JPEG marker at ${i}`);
    const marker = out[i + 1]!;
    const len = out.readUInt16BE(i + 2);
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      out.writeUInt16BE(height, i + 5);
      out.writeUInt16BE(width, i + 7);
      return out;
    }
    i += 2 + len;
  }
  throw new Error('no SOF marker found');
}

function greyNoise(w: number, h: number, seed: number, channels = 1): Buffer {
  const rng = mulberry32(seed);
  return Buffer.from(Array.from({ length: w * h * channels }, () => Math.floor(rng() * 256)));
}

/** A minimal uncompressed little-endian greyscale TIFF of 32-bit IEEE floats (sharp writes only integers). */
export function floatTiff(width: number, height: number, value: (i: number) => number): Buffer {
  const tags: [number, number, number][] = [
    // tag, type (3 = SHORT, 4 = LONG), value
    [256, 4, width], // ImageWidth
    [257, 4, height], // ImageLength
    [258, 3, 32], // BitsPerSample
    [259, 3, 1], // Compression: none
    [262, 3, 1], // PhotometricInterpretation: BlackIsZero
    [273, 4, 0], // StripOffsets (patched below)
    [277, 3, 1], // SamplesPerPixel
    [278, 4, height], // RowsPerStrip
    [279, 4, width * height * 4], // StripByteCounts
    [339, 3, 3], // SampleFormat: IEEE float
  ];
  const ifdSize = 2 + tags.length * 12 + 4;
  const dataOffset = 8 + ifdSize;
  const out = Buffer.alloc(dataOffset + width * height * 4);
  out.write('II', 0, 'latin1');
  out.writeUInt16LE(42, 2);
  out.writeUInt32LE(8, 4);
  out.writeUInt16LE(tags.length, 8);
  tags.forEach(([tag, type, v], k) => {
    const at = 10 + k * 12;
    out.writeUInt16LE(tag, at);
    out.writeUInt16LE(type, at + 2);
    out.writeUInt32LE(1, at + 4);
    if (type === 3) out.writeUInt16LE(v, at + 8);
    else out.writeUInt32LE(tag === 273 ? dataOffset : v, at + 8);
  });
  out.writeUInt32LE(0, 10 + tags.length * 12); // no next IFD
  for (let i = 0; i < width * height; i++) out.writeFloatLE(value(i), dataOffset + i * 4);
  return out;
}

export interface HostileImages {
  png28: Buffer;
  jpeg28: Buffer;
  truncatedPng: Buffer;
  truncatedJpeg: Buffer;
  pngBomb: Buffer;
  hugeJpeg: Buffer;
  animatedGif: Buffer;
  png16: Buffer;
  cmykJpeg: Buffer;
  alphaPng: Buffer;
  svg: Buffer;
  webp: Buffer;
  tiff: Buffer;
  /** 32-bit float TIFF whose samples are NaN, +Inf and -Inf. */
  nanTiff: Buffer;
  /** A 28x28 PNG of noise, larger on the wire than `smallLimit` (for maxBytes tests), and its size. */
  bigPng: Buffer;
}

export async function hostileImages(): Promise<HostileImages> {
  const raw = { width: 28, height: 28, channels: 1 as const };
  const png28 = await sharp(greyNoise(28, 28, 1), { raw }).png().toBuffer();
  const jpeg28 = await sharp(greyNoise(28, 28, 2), { raw }).jpeg().toBuffer();
  const frames = [0, 1, 2].map((k) => sharp(greyNoise(28, 28, 10 + k, 3), { raw: { width: 28, height: 28, channels: 3 } }).png().toBuffer());
  const animatedGif = await sharp(await Promise.all(frames), { join: { animated: true } }).gif({ loop: 0, delay: [100, 100, 100] }).toBuffer();
  const g16 = Buffer.alloc(28 * 28 * 2);
  for (let i = 0; i < 28 * 28; i++) g16.writeUInt16LE((i * 83) & 0xffff, i * 2);
  const png16 = await sharp(g16, { raw: { ...raw, depth: 'ushort' } as sharp.CreateRaw }).toColourspace('grey16').png().toBuffer();
  const cmykJpeg = await sharp(greyNoise(28, 28, 3, 3), { raw: { width: 28, height: 28, channels: 3 } }).toColourspace('cmyk').jpeg().toBuffer();
  const alphaPng = await sharp(greyNoise(28, 28, 4, 4), { raw: { width: 28, height: 28, channels: 4 } }).png().toBuffer();
  const svg = Buffer.from('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><rect width="28" height="28" fill="#fff"/></svg>\n');
  const webp = await sharp(greyNoise(28, 28, 5), { raw }).webp({ lossless: true }).toBuffer();
  const tiff = await sharp(greyNoise(28, 28, 6), { raw }).tiff().toBuffer();
  const nanTiff = floatTiff(28, 28, (i) => [NaN, Infinity, -Infinity, 0.5][i % 4]!);
  const bigPng = await sharp(greyNoise(200, 200, 7), { raw: { width: 200, height: 200, channels: 1 } }).png({ compressionLevel: 0 }).toBuffer();
  return {
    png28,
    jpeg28,
    truncatedPng: png28.subarray(0, Math.floor(png28.length * 0.6)),
    truncatedJpeg: jpeg28.subarray(0, Math.floor(jpeg28.length * 0.6)),
    pngBomb: pngBomb(),
    hugeJpeg: jpegWithDeclaredSize(jpeg28, 65_000, 65_000),
    animatedGif,
    png16,
    cmykJpeg,
    alphaPng,
    svg,
    webp,
    tiff,
    nanTiff,
    bigPng,
  };
}
