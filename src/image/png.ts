/**
 * A raw-pixel fast path for small 8-bit PNGs (the common case on an MNIST-like topic):
 * decode and encode without sharp's per-call overhead (two libvips pipelines per image).
 * Only the plainest PNGs take it: 8-bit greyscale or RGB, not interlaced, no palette, no
 * transparency and no colour-management chunks, all CRCs valid. Anything else returns null
 * and the caller uses sharp, so unusual or damaged files get sharp's full handling.
 */
import { deflateSync, inflateSync } from 'node:zlib';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(buf: Uint8Array, start = 0, end = buf.length): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Chunks that change how samples map to colours or orientation: their presence sends the file to sharp. */
const COLOUR_CHUNKS = new Set(['PLTE', 'tRNS', 'gAMA', 'cHRM', 'sRGB', 'iCCP', 'sBIT', 'cICP', 'acTL', 'eXIf']);

export interface FastPng {
  width: number;
  height: number;
  channels: 1 | 3;
  /** Row-major samples, 8 bits each. */
  data: Uint8Array;
}

/** Decodes a plain 8-bit grey/RGB PNG, or returns null when the file is not that simple. */
export function decodePngFast(b: Uint8Array, maxPixels: number): FastPng | null {
  if (b.length < 8 + 25 || !SIGNATURE.equals(Buffer.from(b.buffer, b.byteOffset, 8))) return null;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let pos = 8;
  let width = 0, height = 0, channels: 1 | 3 = 1;
  const idat: Uint8Array[] = [];
  let sawEnd = false;
  while (pos + 12 <= b.length) {
    const len = dv.getUint32(pos);
    const type = String.fromCharCode(b[pos + 4]!, b[pos + 5]!, b[pos + 6]!, b[pos + 7]!);
    const dataStart = pos + 8, dataEnd = dataStart + len;
    if (dataEnd + 4 > b.length) return null;
    if (crc32(b, pos + 4, dataEnd) !== dv.getUint32(dataEnd)) return null;
    if (pos === 8) {
      if (type !== 'IHDR' || len !== 13) return null;
      width = dv.getUint32(dataStart);
      height = dv.getUint32(dataStart + 4);
      const depth = b[dataStart + 8], colour = b[dataStart + 9], interlace = b[dataStart + 12];
      if (depth !== 8 || (colour !== 0 && colour !== 2) || interlace !== 0) return null;
      if (b[dataStart + 10] !== 0 || b[dataStart + 11] !== 0) return null;
      if (width === 0 || height === 0 || width * height > maxPixels) return null;
      channels = colour === 0 ? 1 : 3;
    } else if (type === 'IDAT') {
      idat.push(b.subarray(dataStart, dataEnd));
    } else if (type === 'IEND') {
      sawEnd = true;
      break;
    } else if (COLOUR_CHUNKS.has(type) || (type.charCodeAt(0) & 0x20) === 0) {
      // A colour chunk, or an unknown critical chunk.
      return null;
    }
    pos = dataEnd + 4;
  }
  if (!sawEnd || idat.length === 0 || width === 0) return null;
  const stride = width * channels;
  const expected = (stride + 1) * height;
  let raw: Buffer;
  try {
    raw = inflateSync(Buffer.concat(idat), { maxOutputLength: expected + 1 });
  } catch {
    return null;
  }
  if (raw.length !== expected) return null;
  const out = new Uint8Array(stride * height);
  const bpp = channels;
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]!;
    const src = y * (stride + 1) + 1, dst = y * stride, prev = dst - stride;
    for (let x = 0; x < stride; x++) {
      const v = raw[src + x]!;
      const a = x >= bpp ? out[dst + x - bpp]! : 0;
      const up = y > 0 ? out[prev + x]! : 0;
      const c = y > 0 && x >= bpp ? out[prev + x - bpp]! : 0;
      let r: number;
      switch (f) {
        case 0: r = v; break;
        case 1: r = v + a; break;
        case 2: r = v + up; break;
        case 3: r = v + ((a + up) >> 1); break;
        case 4: {
          const p = a + up - c, pa = Math.abs(p - a), pb = Math.abs(p - up), pc = Math.abs(p - c);
          r = v + (pa <= pb && pa <= pc ? a : pb <= pc ? up : c);
          break;
        }
        default:
          return null;
      }
      out[dst + x] = r & 0xff;
    }
  }
  return { width, height, channels, data: out };
}

/** One PNG chunk (length, type, data, CRC). */
export function pngChunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out, 4, 8 + data.length), 8 + data.length);
  return out;
}

/** Encodes 8-bit grey or RGB samples as a PNG (filter 0 rows, zlib level 6). */
export function encodePngFast(data: Uint8Array, width: number, height: number, channels: 1 | 3): Buffer {
  const stride = width * channels;
  if (data.length !== stride * height) throw new Error(`encodePngFast: ${data.length} samples for ${width}x${height}x${channels}`);
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) raw.set(data.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = channels === 1 ? 0 : 2;
  return Buffer.concat([SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(raw)), pngChunk('IEND', new Uint8Array(0))]);
}
