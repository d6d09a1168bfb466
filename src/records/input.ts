/**
 * One Kafka message -> the guard's input (image bytes plus metadata), for a topic whose format is
 *   - 'avro': the value is an io.vqguard.ImageRecord (schemas/ImageRecord.avsc);
 *   - 'raw':  the value is a plain image; metadata comes from headers:
 *       vqguard-id             record id (else the message key, else `<topic>-<partition>-<offset>`)
 *       content-type           MIME type (else sniffed from the magic bytes)
 *       vqguard-label          ground-truth class, an integer (optional)
 *       vqguard-produced-at    milliseconds since the epoch, or an ISO-8601 time (else the
 *                              message timestamp, else now)
 *       vqguard-attr-<name>    attribute <name>
 *     Header names are matched case-insensitively.
 *   - 'auto': image magic bytes (PNG, JPEG, GIF, WebP, TIFF, SVG/XML) -> raw; the magic bytes of an
 *     image format the guard does not decode (BMP, ICO, ...) -> `unsupported_format`; anything
 *     else -> Avro. (Sniffing lives in src/image/sniff.ts.)
 */
import { decodeImageRecord, type DecodeOptions } from './avro.ts';
import { MIME_TYPES, sniffImage, sniffUnsupportedImage } from '../image/sniff.ts';
import { cleanDetail, type Failure, type ReasonCode } from './reasons.ts';

export type InputFormat = 'avro' | 'raw' | 'auto';

export type HeaderValue = Buffer | string | (Buffer | string)[] | undefined;

/** The parts of a kafkajs message this module reads. */
export interface MessageLike {
  value: Buffer | null;
  headers?: Record<string, HeaderValue>;
  key?: Buffer | string | null;
  /** Kafka message timestamp, milliseconds since the epoch as a decimal string (kafkajs). */
  timestamp?: string;
}

export interface GuardInput {
  id: string;
  contentType: string;
  bytes: Buffer;
  label?: number;
  attributes: Record<string, string>;
  producedAt: number;
  declaredWidth?: number;
  declaredHeight?: number;
  /** How the value was read. */
  source: 'avro' | 'raw';
}

export type InputResult = { ok: true; input: GuardInput } | Failure;

export interface ParseInputOptions {
  /** Id used when neither the record/header nor the key gives one: `<topic>-<partition>-<offset>`. */
  fallbackId: string;
  /** Clock for producedAt when nothing else gives one. */
  now?: () => number;
  /** Passed to the Avro decoder (e.g. a writer schema). */
  avro?: DecodeOptions;
}

export const HEADER_ID = 'vqguard-id';
export const HEADER_LABEL = 'vqguard-label';
export const HEADER_PRODUCED_AT = 'vqguard-produced-at';
export const HEADER_ATTR_PREFIX = 'vqguard-attr-';
export const HEADER_CONTENT_TYPE = 'content-type';

export { MIME_TYPES, sniffImage, sniffUnsupportedImage, type SniffedFormat } from '../image/sniff.ts';

/** A header as a UTF-8 string (the last one when repeated), matched case-insensitively. */
export function headerString(headers: Record<string, HeaderValue> | undefined, name: string): string | undefined {
  if (!headers) return undefined;
  const want = name.toLowerCase();
  let found: string | undefined;
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() !== want) continue;
    const s = headerValueString(v);
    if (s !== undefined) found = s;
  }
  return found;
}

export function headerValueString(v: HeaderValue): string | undefined {
  if (v === undefined) return undefined;
  if (Array.isArray(v)) return v.length ? headerValueString(v[v.length - 1]) : undefined;
  return Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
}

/** All headers as UTF-8 strings: the one header-flattening function (a repeated header: the last value wins, as in headerString). */
export function headersAsStrings(headers: Record<string, HeaderValue> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {})) {
    const s = headerValueString(v);
    if (s !== undefined) out[k] = s;
  }
  return out;
}

export function parseInput(msg: MessageLike, format: InputFormat, opts: ParseInputOptions): InputResult {
  const value = msg.value;
  if (value === null || value === undefined || value.length === 0) {
    return fail('empty', value ? 'message value has zero length' : 'message value is null (tombstone?)');
  }
  if (format === 'auto' && !sniffImage(value)) {
    const other = sniffUnsupportedImage(value);
    if (other) return fail('unsupported_format', `a ${other} image; supported: PNG, JPEG, GIF, WebP, TIFF, SVG`);
  }
  const mode = format === 'auto' ? (sniffImage(value) ? 'raw' : 'avro') : format;
  return mode === 'raw' ? parseRaw(msg, value, opts) : parseAvro(msg, value, opts);
}

function parseAvro(msg: MessageLike, value: Buffer, opts: ParseInputOptions): InputResult {
  const r = decodeImageRecord(value, opts.avro);
  if (!r.ok) return r;
  const rec = r.record;
  if (rec.image.length === 0) return fail('empty', `ImageRecord "${cleanDetail(rec.id, 80)}" has an empty image field`);
  const input: GuardInput = {
    id: rec.id !== '' ? rec.id : keyString(msg.key) ?? opts.fallbackId,
    contentType: rec.contentType !== '' ? rec.contentType : MIME_TYPES[sniffImage(rec.image) ?? 'png'],
    bytes: rec.image,
    attributes: rec.attributes,
    producedAt: rec.producedAt,
    source: 'avro',
  };
  if (rec.label !== null) input.label = rec.label;
  if (rec.width !== null) input.declaredWidth = rec.width;
  if (rec.height !== null) input.declaredHeight = rec.height;
  return { ok: true, input };
}

function parseRaw(msg: MessageLike, value: Buffer, opts: ParseInputOptions): InputResult {
  const h = msg.headers;
  const id = nonEmpty(headerString(h, HEADER_ID)) ?? keyString(msg.key) ?? opts.fallbackId;

  const sniffed = sniffImage(value);
  const contentType = nonEmpty(headerString(h, HEADER_CONTENT_TYPE)?.trim()) ?? (sniffed ? MIME_TYPES[sniffed] : 'application/octet-stream');

  let label: number | undefined;
  const labelText = headerString(h, HEADER_LABEL);
  if (labelText !== undefined && labelText.trim() !== '') {
    const t = labelText.trim();
    if (!/^-?\d{1,9}$/.test(t)) return fail('bad_header', `header ${HEADER_LABEL} must be an integer, got ${JSON.stringify(cleanDetail(t, 40))}`);
    label = Number(t);
  }

  let producedAt: number | undefined;
  const producedText = headerString(h, HEADER_PRODUCED_AT);
  if (producedText !== undefined && producedText.trim() !== '') {
    const parsed = parseTime(producedText.trim());
    if (parsed === null) {
      return fail('bad_header', `header ${HEADER_PRODUCED_AT} must be milliseconds since the epoch or an ISO-8601 time, got ${JSON.stringify(cleanDetail(producedText, 40))}`);
    }
    producedAt = parsed;
  }
  producedAt ??= msg.timestamp !== undefined && /^\d{1,16}$/.test(msg.timestamp) ? Number(msg.timestamp) : (opts.now ?? Date.now)();

  const attributes: Record<string, string> = {};
  for (const k of Object.keys(h ?? {})) {
    if (k.length > HEADER_ATTR_PREFIX.length && k.toLowerCase().startsWith(HEADER_ATTR_PREFIX)) {
      const v = headerValueString(h![k]);
      if (v !== undefined) attributes[k.slice(HEADER_ATTR_PREFIX.length)] = v;
    }
  }

  const input: GuardInput = { id, contentType, bytes: value, attributes, producedAt, source: 'raw' };
  if (label !== undefined) input.label = label;
  return { ok: true, input };
}

function parseTime(s: string): number | null {
  if (/^\d{1,16}$/.test(s)) return Number(s);
  if (!/^\d{4}-\d{2}-\d{2}/.test(s)) return null;
  const t = Date.parse(s);
  return Number.isFinite(t) ? t : null;
}

function keyString(key: Buffer | string | null | undefined): string | undefined {
  if (key === null || key === undefined) return undefined;
  return nonEmpty(Buffer.isBuffer(key) ? key.toString('utf8') : key);
}

function nonEmpty(s: string | undefined): string | undefined {
  return s !== undefined && s !== '' ? s : undefined;
}

function fail(reason: ReasonCode, detail: string): Failure {
  return { ok: false, reason, detail };
}
