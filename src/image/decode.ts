/**
 * Image bytes -> pixels (HWC float32 in [0,1]) under a per-topic policy, with sharp (libvips),
 * and pixels -> encoded image.
 *
 * Hostile input is refused as cheaply as possible, in this order:
 *   1. size in bytes (too_large_bytes), empty input (empty);
 *   2. magic bytes: only PNG, JPEG, GIF, WebP, TIFF and SVG are recognised (unsupported_format),
 *      and only the policy's formats are handed to libvips (format_not_allowed; SVG is off by
 *      default, so no XML/SVG parser ever sees untrusted input unless a topic opts in);
 *   3. the header (sharp metadata, with limitInputPixels): width x height above maxPixels is
 *      refused before any pixel is decompressed (too_many_pixels), then animation, bit depth,
 *      CMYK, alpha and size against the policy;
 *   4. decoding with failOn 'error' (truncated or corrupt data: corrupt_image).
 * Details never contain image bytes.
 */
import type sharp from 'sharp';
import { decodePngFast, encodePngFast } from './png.ts';
import { sniffImage, type SniffedFormat } from './sniff.ts';
import { cleanDetail, type Failure, type ReasonCode } from '../records/reasons.ts';

export { DEFAULT_IMAGE_POLICY, IMAGE_FORMATS } from './policy.ts';
export type { ImageFormat, ImagePolicy, OutputImageFormat, ResizeMode } from './policy.ts';
import { DEFAULT_IMAGE_POLICY, GREY_TOLERANCE, type ImageFormat, type ImagePolicy, type OutputImageFormat } from './policy.ts';

export interface DecodedImage {
  ok: true;
  /** HWC, values in [0,1]. */
  pixels: Float32Array;
  width: number;
  height: number;
  channels: 1 | 3;
  /** Format of the input. */
  format: ImageFormat;
  /** Size of the input before any resize. */
  sourceWidth: number;
  sourceHeight: number;
  /** Channels the input was stored with (alpha not counted): 1 or 3, whatever the output's. */
  sourceChannels: 1 | 3;
}

export type DecodeImageReason = Extract<
  ReasonCode,
  | 'empty'
  | 'too_large_bytes'
  | 'too_many_pixels'
  | 'unsupported_format'
  | 'format_not_allowed'
  | 'corrupt_image'
  | 'size_mismatch'
  | 'alpha_not_allowed'
  | 'animated_image'
  | 'high_bit_depth'
  | 'cmyk_not_allowed'
  | 'colour_mismatch'
  | 'nan_input'
>;

export type DecodeImageResult = DecodedImage | Failure<DecodeImageReason>;

const EIGHT_BIT_DEPTHS = new Set(['uchar', 'char']);

let sharpLoaded: typeof sharp | undefined;
/** sharp (libvips) is loaded on first use: a stream the PNG fast path handles never loads it. */
async function loadSharp(): Promise<typeof sharp> {
  return (sharpLoaded ??= (await import('sharp')).default);
}

export async function decodeImage(bytes: Uint8Array, policyIn: Partial<ImagePolicy> = {}): Promise<DecodeImageResult> {
  const policy: ImagePolicy = { ...DEFAULT_IMAGE_POLICY, ...policyIn };
  const fail = (reason: DecodeImageReason, detail: string): Failure<DecodeImageReason> => ({ ok: false, reason, detail });

  if (!bytes || bytes.length === 0) return fail('empty', 'image has zero bytes');
  if (bytes.length > policy.maxBytes) return fail('too_large_bytes', `image is ${bytes.length} bytes, limit ${policy.maxBytes}`);

  const format = sniffImage(bytes);
  if (!format) return fail('unsupported_format', 'not a recognised image format (PNG, JPEG, GIF, WebP, TIFF, SVG magic bytes expected)');
  if (!policy.formats.includes(format)) {
    return fail('format_not_allowed', `${format} images are not allowed on this topic (allowed: ${policy.formats.join(', ') || 'none'})`);
  }

  // Fast path: a plain 8-bit PNG of the target size and colour needs no libvips pipeline.
  if (format === 'png') {
    const fast = decodePngFast(bytes, policy.maxPixels);
    const wantC = policy.colour === 'grey' ? 1 : 3;
    if (fast && fast.channels === wantC && (policy.width === undefined || policy.width === fast.width) && (policy.height === undefined || policy.height === fast.height)) {
      const pixels = new Float32Array(fast.data.length);
      for (let i = 0; i < pixels.length; i++) pixels[i] = fast.data[i]! / 255;
      return { ok: true, pixels, width: fast.width, height: fast.height, channels: wantC, format, sourceWidth: fast.width, sourceHeight: fast.height, sourceChannels: wantC };
    }
  }

  const input = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const options: sharp.SharpOptions = { limitInputPixels: policy.maxPixels, failOn: 'error', autoOrient: true };

  let meta: sharp.Metadata;
  const vips = await loadSharp();
  try {
    meta = await vips(input, options).metadata();
  } catch (e) {
    return mapSharpError(e, policy, format);
  }
  if (meta.format !== format) {
    return fail('unsupported_format', `magic bytes say ${format} but the decoder reads ${String(meta.format)}`);
  }

  const srcW = meta.autoOrient?.width ?? meta.width;
  const srcH = meta.autoOrient?.height ?? meta.height;
  if (!(srcW > 0 && srcH > 0)) return fail('corrupt_image', `image header gives no size (${srcW}x${srcH})`);
  if (srcW * srcH > policy.maxPixels) return fail('too_many_pixels', `${srcW}x${srcH} = ${srcW * srcH} pixels, limit ${policy.maxPixels}`);
  if ((meta.pages ?? 1) > 1 && policy.animated === 'reject') return fail('animated_image', `${format} image has ${meta.pages} frames/pages`);
  const highBits = !EIGHT_BIT_DEPTHS.has(meta.depth) || (meta.bitsPerSample ?? 8) > 8;
  if (highBits && policy.highBitDepth === 'reject') {
    return fail('high_bit_depth', `${format} image has ${meta.bitsPerSample ?? meta.depth} bits per sample (${meta.depth}); 8 expected`);
  }
  if (meta.space === 'cmyk' && policy.cmyk === 'reject') return fail('cmyk_not_allowed', `${format} image is CMYK`);
  if (meta.hasAlpha && policy.alpha === 'reject') return fail('alpha_not_allowed', `${format} image has an alpha channel`);

  const tw = policy.width;
  const th = policy.height;
  const resize = tw !== undefined && th !== undefined && (tw !== srcW || th !== srcH);
  if (resize && policy.resize === 'reject') return fail('size_mismatch', `image is ${srcW}x${srcH}, the model takes ${tw}x${th} (image.resize: reject; fill, contain or cover resize it)`);

  const want = policy.colour === 'grey' ? 1 : 3;
  const srcColour = meta.space !== 'b-w' && meta.space !== 'grey16' && (meta.channels ?? 1) - (meta.hasAlpha ? 1 : 0) >= 3;
  const sourceChannels = srcColour ? 3 : 1;
  // A colour-stored image on a grey topic under `reject` is decoded as RGB first: it is accepted
  // (and averaged to grey) only when it is grey in fact, every pixel's channels within GREY_TOLERANCE.
  const checkGrey = policy.colourMismatch === 'reject' && srcColour && want === 1;
  if (policy.colourMismatch === 'reject' && !checkGrey && srcColour !== (want === 3)) {
    return fail('colour_mismatch', `image is ${srcColour ? 'colour' : 'grey'} (${srcW}x${srcH}), the model takes ${policy.colour} ${tw ?? srcW}x${th ?? srcH}`);
  }
  let data: Buffer;
  let info: sharp.OutputInfo;
  try {
    let p = vips(input, options);
    if (meta.hasAlpha) p = p.flatten({ background: '#000000' });
    if (resize) p = p.resize(tw, th, { fit: policy.resize as 'fill' | 'contain' | 'cover', position: 'centre', background: '#000000' });
    p = p.toColourspace(policy.colour === 'grey' && !checkGrey ? 'b-w' : 'srgb');
    ({ data, info } = await p.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true }));
  } catch (e) {
    return mapSharpError(e, policy, format);
  }
  if (checkGrey && info.channels >= 3) {
    const spread = maxChannelSpread(data, info.channels);
    if (spread > GREY_TOLERANCE) {
      return fail('colour_mismatch', `image is colour (${srcW}x${srcH}; channels differ by up to ${spread}/255, grey allows ${GREY_TOLERANCE}), the model takes grey ${tw ?? srcW}x${th ?? srcH}`);
    }
  }

  const w = info.width;
  const h = info.height;
  const c = info.channels;
  if (data.length !== w * h * c) return fail('corrupt_image', `decoder returned ${data.length} bytes for ${w}x${h}x${c}`);
  const pixels = new Float32Array(w * h * want);
  for (let i = 0, o = 0; i < data.length; i += c) {
    if (want === 1) {
      // b-w gives 1 band (2 with alpha, which flatten removed); average colour bands if ever more.
      pixels[o++] = (c >= 3 ? (data[i]! + data[i + 1]! + data[i + 2]!) / 3 : data[i]!) / 255;
    } else {
      const g = c < 3;
      pixels[o++] = data[i]! / 255;
      pixels[o++] = data[g ? i : i + 1]! / 255;
      pixels[o++] = data[g ? i : i + 2]! / 255;
    }
  }
  for (let i = 0; i < pixels.length; i++) {
    if (!Number.isFinite(pixels[i]!)) return fail('nan_input', `non-finite pixel value at index ${i}`);
  }
  return { ok: true, pixels, width: w, height: h, channels: want, format, sourceWidth: srcW, sourceHeight: srcH, sourceChannels };
}

/** Largest difference between two colour channels of one pixel, in 8-bit levels (interleaved data, c >= 3). */
export function maxChannelSpread(data: Uint8Array, c: number): number {
  let max = 0;
  for (let i = 0; i < data.length; i += c) {
    const r = data[i]!, g = data[i + 1]!, b = data[i + 2]!;
    const s = Math.max(r, g, b) - Math.min(r, g, b);
    if (s > max) max = s;
  }
  return max;
}

function mapSharpError(e: unknown, policy: ImagePolicy, format: ImageFormat): Failure<DecodeImageReason> {
  const msg = cleanDetail(String((e as Error)?.message ?? e));
  if (/exceeds pixel limit/i.test(msg)) return { ok: false, reason: 'too_many_pixels', detail: `image header declares more than ${policy.maxPixels} pixels` };
  // The magic bytes were recognised before sharp was called, so "unsupported" here means the
  // header could not be read (e.g. a truncated TIFF whose directory is at the end).
  if (/unsupported image format/i.test(msg)) return { ok: false, reason: 'corrupt_image', detail: `${format} header cannot be read: ${msg}` };
  if (/Input Buffer is empty/i.test(msg)) return { ok: false, reason: 'empty', detail: 'image has zero bytes' };
  return { ok: false, reason: 'corrupt_image', detail: msg };
}

/**
 * Encodes HWC float pixels in [0,1] (values outside are clamped, then rounded to 8 bits).
 * PNG is lossless, so decode(encode(x)) == x for x already on the 1/255 grid.
 */
export async function encodeImage(
  pixels: Float32Array,
  width: number,
  height: number,
  channels: 1 | 2 | 3 | 4,
  format: OutputImageFormat = 'png',
): Promise<Buffer> {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new Error(`encodeImage: invalid size ${width}x${height}`);
  }
  if (![1, 2, 3, 4].includes(channels)) throw new Error(`encodeImage: channels must be 1..4, got ${channels}`);
  if (pixels.length !== width * height * channels) {
    throw new Error(`encodeImage: ${pixels.length} values for ${width}x${height}x${channels} (${width * height * channels} expected)`);
  }
  const raw = Buffer.allocUnsafe(pixels.length);
  for (let i = 0; i < pixels.length; i++) {
    const v = pixels[i]!;
    if (Number.isNaN(v)) throw new Error(`encodeImage: NaN at index ${i}`);
    raw[i] = Math.round(Math.min(1, Math.max(0, v)) * 255);
  }
  if (format === 'png' && (channels === 1 || channels === 3)) return encodePngFast(raw, width, height, channels);
  const p = (await loadSharp())(raw, { raw: { width, height, channels } });
  switch (format) {
    case 'png':
      return p.png().toBuffer();
    case 'jpeg':
      return p.jpeg({ quality: 95 }).toBuffer();
    case 'webp':
      return p.webp({ lossless: true }).toBuffer();
    case 'tiff':
      return p.tiff({ compression: 'lzw' }).toBuffer();
    case 'gif':
      return p.gif().toBuffer();
    default:
      throw new Error(`encodeImage: unsupported output format ${String(format)}`);
  }
}

/** MIME type for an output format. */
export function mimeType(format: OutputImageFormat | ImageFormat): string {
  return format === 'svg' ? 'image/svg+xml' : `image/${format}`;
}
