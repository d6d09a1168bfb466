/**
 * The four Avro record types (schemas/*.avsc, loaded once) and their encoders/decoders.
 *
 * Decoding is safe on untrusted bytes: before avsc sees a buffer, a bounded walker checks it
 * against the (writer) schema: varints at most 10 bytes and in range, lengths within the buffer,
 * union/enum indices in range, strings valid UTF-8, and array/map block counts bounded by the
 * bytes left. (avsc alone trusts block counts: a map claiming 2^49 entries makes it loop for
 * minutes; random bytes may also decode to a nonsense record or throw an unclear error.)
 * Decoders return { ok: true, record } | { ok: false, reason, detail }; they never throw.
 */
import { readFileSync } from 'node:fs';
import avro from 'avsc';
import type { Type as AvroType } from 'avsc';
import { cleanDetail, type Failure } from './reasons.ts';

export const SCHEMA_DIR = new URL('../../schemas/', import.meta.url);

export type SchemaName = 'ImageRecord' | 'GuardedImage' | 'Alert' | 'DeadLetter';

function loadType(name: SchemaName): AvroType {
  const text = readFileSync(new URL(`${name}.avsc`, SCHEMA_DIR), 'utf8');
  return avro.Type.forSchema(JSON.parse(text) as avro.Schema);
}

export const imageRecordType: AvroType = loadType('ImageRecord');
export const guardedImageType: AvroType = loadType('GuardedImage');
export const alertType: AvroType = loadType('Alert');
export const deadLetterType: AvroType = loadType('DeadLetter');

// ---------------------------------------------------------------------------------------------
// Record shapes

export interface ImageRecord {
  id: string;
  contentType: string;
  image: Buffer;
  width: number | null;
  height: number | null;
  label: number | null;
  attributes: Record<string, string>;
  producedAt: number;
}

export interface Verdict {
  flagged: boolean;
  score: number;
  scores: Record<string, number>;
  labelBefore: number;
  labelAfter: number;
  confidenceBefore: number;
  confidenceAfter: number;
  threshold: number;
}

export interface SourceRef {
  topic: string;
  partition: number;
  offset: string;
}

export interface GuardedImage {
  id: string;
  contentType: string;
  image: Buffer;
  width: number;
  height: number;
  verdict: Verdict;
  pipeline: string;
  modelVersions: Record<string, string>;
  action: string;
  source: SourceRef;
  label: number | null;
  attributes: Record<string, string>;
  producedAt: number;
  guardedAt: number;
}

export interface Alert {
  id: string;
  topic: string;
  partition: number;
  offset: string;
  pipeline: string;
  score: number;
  scores: Record<string, number>;
  labelBefore: number;
  labelAfter: number;
  reason: string;
  attributes: Record<string, string>;
  at: number;
}

export interface DeadLetter {
  id: string | null;
  reason: string;
  detail: string;
  original: Buffer;
  headers: Record<string, string>;
  topic: string;
  partition: number;
  offset: string;
  at: number;
  /** Set when `original` is truncated (the whole would not fit the dead-letter topic). */
  originalLength: number | null;
  originalSha256: string | null;
  /** The original message key and timestamp (null when absent, and in dead letters written before they were added). */
  key: Buffer | null;
  timestamp: number | null;
}

/** Fields with a schema default may be left out when encoding. */
type WithDefaults<T, K extends keyof T> = Omit<T, K> & Partial<Pick<T, K>>;
export type ImageRecordInput = WithDefaults<ImageRecord, 'width' | 'height' | 'label' | 'attributes'>;
export type GuardedImageInput = WithDefaults<GuardedImage, 'label' | 'attributes'>;
export type AlertInput = WithDefaults<Alert, 'attributes'>;
export type DeadLetterInput = WithDefaults<DeadLetter, 'id' | 'headers' | 'originalLength' | 'originalSha256' | 'key' | 'timestamp'>;

export type DecodeReason = 'bad_avro' | 'schema_mismatch' | 'missing_field';
export type DecodeResult<T> = { ok: true; record: T } | Failure<DecodeReason>;

export interface DecodeOptions {
  /**
   * The schema the bytes were written with, when it differs from ours (an older or newer
   * producer). Decoding then resolves writer -> reader (avsc createResolver): fields the writer
   * lacks take their defaults, fields the reader lacks are skipped.
   */
  writerSchema?: AvroType | avro.Schema;
}

// ---------------------------------------------------------------------------------------------
// Encoding

function encodeChecked(type: AvroType, name: string, value: unknown): Buffer {
  const problems: string[] = [];
  const valid = type.isValid(value, {
    errorHook: (path: string[], v: unknown, t: AvroType) => {
      if (problems.length < 8) {
        const shown = v === undefined ? 'missing' : typeof v === 'string' ? JSON.stringify(cleanDetail(v, 40)) : Buffer.isBuffer(v) ? `${v.length} bytes` : typeof v === 'object' ? (v === null ? 'null' : 'object') : String(v);
        problems.push(`${path.join('.') || '(record)'}: expected ${describeType(t)}, got ${shown}`);
      }
    },
  });
  if (!valid) throw new Error(`cannot encode ${name}: ${problems.join('; ') || 'invalid value'}`);
  return type.toBuffer(value);
}

function describeType(t: AvroType): string {
  const n = t.typeName;
  if (n.startsWith('union')) return (t as unknown as { types: AvroType[] }).types.map(describeType).join(' | ');
  return (t as unknown as { name?: string }).name ?? n;
}

export function encodeImageRecord(r: ImageRecordInput): Buffer {
  return encodeChecked(imageRecordType, 'ImageRecord', { width: null, height: null, label: null, attributes: {}, ...r });
}

export function encodeGuardedImage(r: GuardedImageInput): Buffer {
  return encodeChecked(guardedImageType, 'GuardedImage', { label: null, attributes: {}, ...r });
}

export function encodeAlert(r: AlertInput): Buffer {
  return encodeChecked(alertType, 'Alert', { attributes: {}, ...r });
}

export function encodeDeadLetter(r: DeadLetterInput): Buffer {
  return encodeChecked(deadLetterType, 'DeadLetter', { id: null, headers: {}, originalLength: null, originalSha256: null, key: null, timestamp: null, ...r });
}

// ---------------------------------------------------------------------------------------------
// Decoding

export function decodeImageRecord(buf: Buffer, opts: DecodeOptions = {}): DecodeResult<ImageRecord> {
  return decodeWith<ImageRecord>(imageRecordType, 'ImageRecord', buf, opts);
}

export function decodeGuardedImage(buf: Buffer, opts: DecodeOptions = {}): DecodeResult<GuardedImage> {
  return decodeWith<GuardedImage>(guardedImageType, 'GuardedImage', buf, opts);
}

export function decodeAlert(buf: Buffer, opts: DecodeOptions = {}): DecodeResult<Alert> {
  return decodeWith<Alert>(alertType, 'Alert', buf, opts);
}

export function decodeDeadLetter(buf: Buffer, opts: DecodeOptions = {}): DecodeResult<DeadLetter> {
  return decodeWith<DeadLetter>(deadLetterType, 'DeadLetter', buf, opts);
}

const resolverCache = new WeakMap<AvroType, WeakMap<AvroType, unknown>>();

function decodeWith<T>(reader: AvroType, name: string, buf: Buffer, opts: DecodeOptions): DecodeResult<T> {
  if (!Buffer.isBuffer(buf)) return { ok: false, reason: 'bad_avro', detail: `${name}: value is not a byte buffer` };
  let writer = reader;
  let resolver: unknown;
  if (opts.writerSchema !== undefined) {
    try {
      writer = opts.writerSchema instanceof avro.Type ? opts.writerSchema : avro.Type.forSchema(opts.writerSchema);
    } catch (e) {
      return { ok: false, reason: 'schema_mismatch', detail: `${name}: writer schema is invalid: ${cleanDetail((e as Error).message)}` };
    }
    if (writer !== reader) {
      let perReader = resolverCache.get(reader);
      if (!perReader) resolverCache.set(reader, (perReader = new WeakMap()));
      resolver = perReader.get(writer);
      if (!resolver) {
        try {
          resolver = reader.createResolver(writer);
        } catch (e) {
          const missing = missingReaderFields(reader, writer);
          return missing.length
            ? { ok: false, reason: 'missing_field', detail: `${name}: the writer schema lacks required field(s) ${missing.map((f) => `"${f}"`).join(', ')} (no default)` }
            : { ok: false, reason: 'schema_mismatch', detail: `${name}: cannot read the writer schema: ${cleanDetail((e as Error).message)}` };
        }
        perReader.set(writer, resolver);
      }
    }
  }

  const walked = walkRecord(writer, buf, 0);
  if (!walked.ok) {
    // A Confluent Schema Registry frame (magic 0, 4-byte schema id) in front of a valid record?
    if (buf.length > 5 && buf[0] === 0) {
      const framed = walkRecord(writer, buf, 5);
      if (framed.ok && framed.end === buf.length) {
        return {
          ok: false,
          reason: 'schema_mismatch',
          detail: `${name}: looks like Confluent Schema Registry framing (magic byte 0, schema id ${buf.readUInt32BE(1)}); set the topic's schemaRegistry to read framed records (src/records/registry.ts)`,
        };
      }
    }
    return { ok: false, reason: walked.reason, detail: `${name}: ${walked.detail}` };
  }
  if (walked.end !== buf.length) {
    return {
      ok: false,
      reason: 'schema_mismatch',
      detail: `${name}: ${buf.length - walked.end} trailing byte(s) after a complete record (${walked.end} of ${buf.length} bytes read): written with a different schema?`,
    };
  }
  let value: unknown;
  try {
    value = reader.fromBuffer(buf, resolver as Parameters<AvroType['fromBuffer']>[1]);
  } catch (e) {
    return { ok: false, reason: 'bad_avro', detail: `${name}: ${cleanDetail((e as Error).message)}` };
  }
  if (!reader.isValid(value)) return { ok: false, reason: 'schema_mismatch', detail: `${name}: decoded value does not validate against the schema` };
  return { ok: true, record: toPlain(value) as T };
}

function missingReaderFields(reader: AvroType, writer: AvroType): string[] {
  const rf = (reader as unknown as { fields?: avro.types.Field[] }).fields;
  const wf = (writer as unknown as { fields?: avro.types.Field[] }).fields;
  if (!rf || !wf) return [];
  const names = new Set(wf.flatMap((f) => [f.name, ...(f.aliases ?? [])]));
  return rf
    .filter((f) => !names.has(f.name) && !(f.aliases ?? []).some((a) => names.has(a)))
    .filter((f) => f.defaultValue() === undefined)
    .map((f) => f.name);
}

/** avsc returns record-class instances; callers get plain objects (deep-equal friendly). */
function toPlain(v: unknown): unknown {
  if (v === null || typeof v !== 'object' || Buffer.isBuffer(v)) return v;
  if (Array.isArray(v)) return v.map(toPlain);
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = toPlain(x);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Bounded walker

class WalkError extends Error {
  constructor(readonly kind: 'truncated' | 'invalid', message: string) {
    super(message);
  }
}

const MAX_DEPTH = 32;
/** Cap on items of zero-byte types (e.g. array of null), which the byte count cannot bound. */
const MAX_ZERO_SIZE_ITEMS = 100_000;
const utf8 = new TextDecoder('utf-8', { fatal: true });

type WalkResult = { ok: true; end: number } | { ok: false; reason: DecodeReason; detail: string };

/** Walks a top-level record field by field, classifying failures. */
function walkRecord(type: AvroType, buf: Buffer, start: number): WalkResult {
  const fields = (type as unknown as { fields?: avro.types.Field[] }).fields;
  const w = new Walker(buf, start);
  if (!fields) {
    try {
      w.skip(type, '(value)', 0);
      return { ok: true, end: w.pos };
    } catch (e) {
      return classify(e, '(value)', 0);
    }
  }
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    if (w.pos === buf.length && buf.length > start && minSize(f.type) > 0) {
      const missing = fields.slice(i).filter((x) => minSize(x.type) > 0).map((x) => `"${x.name}"`);
      return {
        ok: false,
        reason: 'missing_field',
        detail: `record ends after field "${fields[i - 1]?.name}": missing ${missing.join(', ')}`,
      };
    }
    try {
      w.skip(f.type, f.name, 0);
    } catch (e) {
      return classify(e, f.name, i);
    }
  }
  return { ok: true, end: w.pos };
}

/**
 * Invalid encoding anywhere, or truncation inside the first field: bad_avro (garbage). Truncation
 * after at least one complete field: most likely a record of another schema, so schema_mismatch.
 */
function classify(e: unknown, field: string, index: number): WalkResult {
  if (e instanceof WalkError && e.kind === 'truncated' && index > 0) {
    return {
      ok: false,
      reason: 'schema_mismatch',
      detail: `the bytes end inside field "${field}" (${e.message}): written with a different schema, or truncated`,
    };
  }
  if (e instanceof WalkError) {
    return {
      ok: false,
      reason: 'bad_avro',
      detail: e.kind === 'truncated' ? `truncated in field "${field}": ${e.message}` : `invalid data in field "${field}": ${e.message}`,
    };
  }
  return { ok: false, reason: 'bad_avro', detail: `field "${field}": ${cleanDetail(String((e as Error)?.message ?? e))}` };
}

function minSize(t: AvroType): number {
  switch (t.typeName) {
    case 'null':
      return 0;
    case 'float':
      return 4;
    case 'double':
      return 8;
    case 'fixed':
      return (t as avro.types.FixedType).size;
    case 'record':
    case 'error':
      return (t as avro.types.RecordType).fields.reduce((s, f) => s + minSize(f.type), 0);
    default:
      if (t instanceof avro.types.LogicalType) return minSize(t.underlyingType);
      return 1; // boolean, int, long, bytes, string, enum, array, map, union
  }
}

class Walker {
  constructor(readonly buf: Buffer, public pos: number) {}

  private need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) {
      throw new WalkError('truncated', `${what} needs ${n} byte(s), ${this.buf.length - this.pos} left`);
    }
  }

  /** Zig-zag varint as a safe integer. */
  long(what: string): number {
    let u = 0n;
    let shift = 0n;
    for (let i = 0; ; i++) {
      if (i >= 10) throw new WalkError('invalid', `${what}: varint longer than 10 bytes`);
      this.need(1, what);
      const b = this.buf[this.pos++]!;
      u |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) break;
      shift += 7n;
    }
    const n = (u >> 1n) ^ -(u & 1n);
    if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new WalkError('invalid', `${what}: integer out of range`);
    }
    return Number(n);
  }

  length(what: string): number {
    const n = this.long(what);
    if (n < 0) throw new WalkError('invalid', `${what}: negative length ${n}`);
    this.need(n, what);
    return n;
  }

  skip(t: AvroType, path: string, depth: number): void {
    if (depth > MAX_DEPTH) throw new WalkError('invalid', `${path}: nesting deeper than ${MAX_DEPTH}`);
    switch (t.typeName) {
      case 'null':
        return;
      case 'boolean': {
        this.need(1, path);
        const b = this.buf[this.pos++]!;
        if (b > 1) throw new WalkError('invalid', `${path}: boolean byte ${b}`);
        return;
      }
      case 'int': {
        const n = this.long(path);
        if (n > 0x7fffffff || n < -0x80000000) throw new WalkError('invalid', `${path}: int out of range`);
        return;
      }
      case 'long':
        this.long(path);
        return;
      case 'float':
        this.need(4, path);
        this.pos += 4;
        return;
      case 'double':
        this.need(8, path);
        this.pos += 8;
        return;
      case 'bytes': {
        const n = this.length(path);
        this.pos += n;
        return;
      }
      case 'string': {
        const n = this.length(path);
        try {
          utf8.decode(this.buf.subarray(this.pos, this.pos + n));
        } catch {
          throw new WalkError('invalid', `${path}: string is not valid UTF-8`);
        }
        this.pos += n;
        return;
      }
      case 'fixed': {
        const n = (t as avro.types.FixedType).size;
        this.need(n, path);
        this.pos += n;
        return;
      }
      case 'enum': {
        const i = this.long(path);
        const symbols = (t as avro.types.EnumType).symbols;
        if (i < 0 || i >= symbols.length) throw new WalkError('invalid', `${path}: enum index ${i} out of range`);
        return;
      }
      case 'array':
        this.blocks(path, depth, (p) => this.skip((t as avro.types.ArrayType).itemsType, p, depth + 1), minSize((t as avro.types.ArrayType).itemsType));
        return;
      case 'map': {
        const values = (t as avro.types.MapType).valuesType as AvroType;
        this.blocks(
          path,
          depth,
          (p) => {
            this.skip(STRING, `${p} key`, depth + 1);
            this.skip(values, p, depth + 1);
          },
          1 + minSize(values),
        );
        return;
      }
      case 'record':
      case 'error':
        for (const f of (t as avro.types.RecordType).fields) this.skip(f.type, `${path}.${f.name}`, depth + 1);
        return;
      default: {
        if (t instanceof avro.types.LogicalType) return this.skip(t.underlyingType, path, depth);
        if (t.typeName.startsWith('union')) {
          const types = (t as avro.types.UnwrappedUnionType).types;
          const i = this.long(path);
          if (i < 0 || i >= types.length) throw new WalkError('invalid', `${path}: union branch ${i} out of range`);
          return this.skip(types[i]!, path, depth + 1);
        }
        throw new WalkError('invalid', `${path}: unsupported Avro type ${t.typeName}`);
      }
    }
  }

  private blocks(path: string, _depth: number, item: (p: string) => void, itemMin: number): void {
    let total = 0;
    for (;;) {
      let n = this.long(`${path} block count`);
      if (n === 0) return;
      if (n < 0) {
        n = -n;
        const size = this.long(`${path} block size`);
        if (size < 0 || this.pos + size > this.buf.length) throw new WalkError('truncated', `${path}: block size ${size} beyond the buffer`);
      }
      total += n;
      if (itemMin > 0 ? n * itemMin > this.buf.length - this.pos : total > MAX_ZERO_SIZE_ITEMS) {
        throw new WalkError('invalid', `${path}: block claims ${n} item(s) but only ${this.buf.length - this.pos} byte(s) remain`);
      }
      for (let i = 0; i < n; i++) item(`${path}[${total - n + i}]`);
    }
  }
}

const STRING: AvroType = avro.Type.forSchema('string');
