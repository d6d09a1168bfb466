/**
 * The per-topic image policy (formats, limits, resizing) and its defaults: plain data, so the
 * config schema can use it without loading sharp (src/image/decode.ts applies it).
 */
export type ImageFormat = 'png' | 'jpeg' | 'gif' | 'webp' | 'tiff' | 'svg';
export const IMAGE_FORMATS: readonly ImageFormat[] = ['png', 'jpeg', 'webp', 'gif', 'tiff', 'svg'];
export type ResizeMode = 'reject' | 'fill' | 'contain' | 'cover';
export type OutputImageFormat = 'png' | 'jpeg' | 'webp' | 'tiff' | 'gif';

export interface ImagePolicy {
  /** Largest encoded image accepted, in bytes. */
  maxBytes: number;
  /** Largest width x height accepted (from the header, before decoding). */
  maxPixels: number;
  /** Formats accepted. */
  formats: readonly ImageFormat[];
  /** Output colour: 'grey' = 1 channel, 'rgb' = 3 channels. */
  colour: 'grey' | 'rgb';
  /** Target size; when both are set, images of another size are handled per `resize`. */
  width?: number;
  height?: number;
  /** reject (the default): size_mismatch; fill: stretch; contain: letterbox on black; cover: centre crop. */
  resize: ResizeMode;
  /**
   * reject (the default): a colour image on a grey topic (or a 1-channel grey one on an rgb topic)
   * is dead-lettered (colour_mismatch); convert: converted. An image stored as RGB whose channels
   * are all within GREY_TOLERANCE of each other counts as grey.
   */
  colourMismatch: 'convert' | 'reject';
  /** flatten: composite onto black; reject: alpha_not_allowed. */
  alpha: 'flatten' | 'reject';
  /** first-frame: use frame/page 0; reject: animated_image. */
  animated: 'first-frame' | 'reject';
  /** convert: reduce to 8 bits per sample; reject: high_bit_depth. */
  highBitDepth: 'convert' | 'reject';
  /** convert: to sRGB (embedded profile, else a generic CMYK profile); reject: cmyk_not_allowed. */
  cmyk: 'convert' | 'reject';
}

/**
 * An image stored as RGB counts as grey when, in every pixel, its three channels are within this
 * many 8-bit levels of each other (grey scans and JPEG chroma noise stay well inside it).
 */
export const GREY_TOLERANCE = 24;

export const DEFAULT_IMAGE_POLICY: Readonly<ImagePolicy> = Object.freeze({
  maxBytes: 1_048_576,
  maxPixels: 4_194_304,
  formats: Object.freeze(['png', 'jpeg', 'webp', 'gif', 'tiff'] as ImageFormat[]),
  colour: 'grey',
  // The defaults a careful user would choose: an image of another size or colour than the model's
  // is dead-lettered with a reason (size_mismatch, colour_mismatch), never silently resized or
  // converted; a topic that wants resizing says `resize: fill | contain | cover` (or
  // `colourMismatch: convert`) in its image policy.
  resize: 'reject',
  colourMismatch: 'reject',
  alpha: 'flatten',
  animated: 'first-frame',
  highBitDepth: 'convert',
  cmyk: 'convert',
});
