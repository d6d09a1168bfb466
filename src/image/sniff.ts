/**
 * Image format from magic bytes (no decoding). Two answers:
 *   - sniffImage: one of the formats the guard decodes (PNG, JPEG, GIF, WebP, TIFF, SVG/XML), or null;
 *   - sniffUnsupportedImage: a recognisable image format the guard does not decode (BMP, ICO/CUR,
 *     PSD, HEIF/AVIF, JPEG 2000, JPEG XL, QOI), or null. The record readers use it so that such a
 *     value is dead-lettered as `unsupported_format` instead of being tried as Avro (`bad_avro`).
 */
export type SniffedFormat = 'png' | 'jpeg' | 'gif' | 'webp' | 'tiff' | 'svg';

export const MIME_TYPES: Record<SniffedFormat, string> = {
  png: 'image/png',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  tiff: 'image/tiff',
  svg: 'image/svg+xml',
};

const at = (b: Uint8Array, i: number, ...bytes: number[]) => bytes.every((x, j) => b[i + j] === x);
const ascii = (b: Uint8Array, i: number, s: string) => at(b, i, ...[...s].map((c) => c.charCodeAt(0)));

/** Image format from the magic bytes, or null. */
export function sniffImage(b: Uint8Array): SniffedFormat | null {
  if (at(b, 0, 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return 'png';
  if (at(b, 0, 0xff, 0xd8, 0xff)) return 'jpeg';
  if (at(b, 0, 0x47, 0x49, 0x46, 0x38) && (b[4] === 0x37 || b[4] === 0x39) && b[5] === 0x61) return 'gif';
  if (at(b, 0, 0x52, 0x49, 0x46, 0x46) && at(b, 8, 0x57, 0x45, 0x42, 0x50)) return 'webp';
  if (at(b, 0, 0x49, 0x49, 0x2a, 0x00) || at(b, 0, 0x4d, 0x4d, 0x00, 0x2a)) return 'tiff';
  if (looksLikeSvg(b)) return 'svg';
  return null;
}

/** Human name of an image format the guard recognises but does not decode, or null. */
export function sniffUnsupportedImage(b: Uint8Array): string | null {
  // BMP: "BM", then a 4-byte file size, 4 reserved bytes, a pixel-data offset, and a DIB header
  // size of 12, 40, 52, 56, 64, 108 or 124 (checked to keep random "BM..." text out).
  if (ascii(b, 0, 'BM') && b.length >= 18) {
    const dib = b[14]! | (b[15]! << 8) | (b[16]! << 16) | (b[17]! << 24);
    if ([12, 16, 40, 52, 56, 64, 108, 124].includes(dib)) return 'BMP';
  }
  // ICO / CUR: reserved 0, type 1 (icon) or 2 (cursor), image count >= 1, first entry's reserved byte 0.
  if (at(b, 0, 0x00, 0x00) && (b[2] === 1 || b[2] === 2) && b[3] === 0 && (b[4]! | (b[5]! << 8)) >= 1 && b.length >= 22 && b[9] === 0) {
    return b[2] === 1 ? 'ICO' : 'CUR';
  }
  if (ascii(b, 0, '8BPS')) return 'PSD';
  if (ascii(b, 4, 'ftyp') && /^(heic|heix|hevc|heim|heis|mif1|msf1|avif|avis)$/.test(Buffer.from(b.subarray(8, 12)).toString('latin1'))) return 'HEIF/AVIF';
  if (at(b, 0, 0x00, 0x00, 0x00, 0x0c, 0x6a, 0x50, 0x20, 0x20) || at(b, 0, 0xff, 0x4f, 0xff, 0x51)) return 'JPEG 2000';
  if (at(b, 0, 0xff, 0x0a) || at(b, 0, 0x00, 0x00, 0x00, 0x0c, 0x4a, 0x58, 0x4c, 0x20)) return 'JPEG XL';
  if (ascii(b, 0, 'qoif')) return 'QOI';
  return null;
}

function looksLikeSvg(b: Uint8Array): boolean {
  // Skip a UTF-8 BOM and leading whitespace, then expect <?xml, <svg or <!DOCTYPE svg (or a comment).
  let i = b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? 3 : 0;
  while (i < b.length && i < 1024 && (b[i] === 0x20 || b[i] === 0x09 || b[i] === 0x0a || b[i] === 0x0d)) i++;
  if (b[i] !== 0x3c) return false; // '<'
  const head = Buffer.from(b.subarray(i, i + 256)).toString('latin1').toLowerCase();
  return head.startsWith('<?xml') || head.startsWith('<svg') || head.startsWith('<!doctype svg') || (head.startsWith('<!--') && head.includes('<svg'));
}
