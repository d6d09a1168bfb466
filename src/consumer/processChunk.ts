/**
 * One micro-batch of one input partition, in three steps, each isolated per record:
 *   1. decode:    parse (Avro / headers) and decode the image; a failure dead-letters that record;
 *   2. inference: one tensor for the records that decoded, purify + detect; a failure of the model
 *                 for the whole batch dead-letters the batch's records (`processing_error`);
 *   3. outcome:   verdict -> alert, cleaned image, GuardedImage; a failure for one record (encoding
 *                 its image or its Avro record) dead-letters that record (`encode_error`).
 * Then `assemble` turns the per-record outcomes into the messages to produce, each checked against
 * the size its topic accepts (`ChunkOptions.maxBytes`): an output that does not fit becomes a
 * dead letter (`output_too_large`), an alert that does not fit loses its attributes, and a dead
 * letter that does not fit carries the first bytes of the original plus its length and sha256
 * (one that cannot fit even so is marked `dropped`: logged and counted by the runner's subscribers).
 * Outputs and alerts keep the input's key and headers, plus the verdict headers; dead letters are
 * the Avro envelope or, with `deadLetterFormat: connect`, the original record verbatim with Kafka
 * Connect's `__connect.errors.*` context headers.
 * Nothing is sent here. Every input message ends in exactly one output or one dead letter.
 */
import { createHash } from 'node:crypto';
import { tf } from '../backend/tf.ts';
import { headersAsStrings, parseInput } from '../records/input.ts';
import { decodeImage, encodeImage, mimeType, type OutputImageFormat } from '../image/decode.ts';
import { encodeAlert, encodeDeadLetter, encodeGuardedImage, type Alert, type DeadLetterInput } from '../records/avro.ts';
import { cleanDetail, type ReasonCode } from '../records/reasons.ts';
import { FRAME_BYTES, frameValue, type OutputSchemaIds } from '../records/registry.ts';
import type { PoolDecodeResult } from './imagePool.ts';
import type { TopicRuntime } from './topicRuntime.ts';
import type { GuardInput } from '../records/input.ts';
import type { Verdict } from '../detect/detector.ts';

type DecodedFormat = 'png' | 'jpeg' | 'gif' | 'webp' | 'tiff' | 'svg';

export interface InMessage {
  key: Buffer | null;
  value: Buffer | null;
  headers?: Record<string, Buffer | string | (Buffer | string)[] | undefined>;
  offset: string;
  timestamp: string;
}

/** Header values as kafkajs gives and takes them (a repeated header is an array). */
export type HeaderValue = Buffer | string | (Buffer | string)[];
export type Headers = Record<string, HeaderValue>;

export interface OutMessage {
  key: Buffer | string | null;
  value: Buffer;
  headers?: Headers;
  /** Set on Connect-style dead letters: the original record's timestamp. */
  timestamp?: string;
}

/** The input record's headers, without undefined entries (kept on outputs, alerts and dead letters). */
export function inputHeaders(m: InMessage): Headers {
  const out: Headers = {};
  for (const [k, v] of Object.entries(m.headers ?? {})) if (v !== undefined) out[k] = v;
  return out;
}

/** An alert as produced to the alert topic (the Avro Alert record). */
export type AlertEvent = Alert;

/** What became of one input record (before it is turned into messages). */
export type Outcome =
  | { kind: 'output'; m: InMessage; id: string; value: Buffer; headers: Record<string, string>; alert?: Alert; flagged: boolean; label: number | null; verdict: Verdict }
  | { kind: 'dead'; m: InMessage; id: string | null; reason: ReasonCode; detail: string; alert?: Alert };

export interface ChunkResult {
  /** topic -> messages */
  out: Map<string, OutMessage[]>;
  alerts: AlertEvent[];
  /**
   * Every dead-lettered record; `dropped`: not even a truncated dead letter fits the dead-letter
   * topic's limit, so none was produced (logged at error level and counted in
   * vqguard_dead_letters_dropped_total; the offset still moves on).
   */
  deadLetters: { id: string | null; reason: string; offset: string; truncated?: boolean; dropped?: boolean }[];
  outputs: { id: string; flagged: boolean; offset: string; label: number | null; verdict: Verdict }[];
  /** Record timestamps (ms) for end-to-end latency. */
  timestamps: number[];
  /** Milliseconds spent per stage in this chunk (parse = Avro/headers, decode = image decode). */
  stageMs: { parse: number; decode: number; tensor: number; model: number; encode: number };
  /** Per-record outcomes, in input order (for `assemble` again with other limits). */
  outcomes: Outcome[];
}

/** Replaceable steps (fault injection in tests; defaults are the real ones). */
export interface ChunkSteps {
  /** Encodes one record's cleaned image (`id`: the record's id, for fault injection). */
  encodeImage(pixels: Float32Array, width: number, height: number, channels: 1 | 3, format: OutputImageFormat, id: string): Promise<Buffer>;
  encodeGuardedImage: typeof encodeGuardedImage;
}

export interface ChunkOptions {
  /** Largest message (key + value + headers) each topic accepts; default: no limit. */
  maxBytes?: (topic: string) => number;
  steps?: Partial<ChunkSteps>;
  now?: () => number;
}

/** Bytes a record adds to a record batch besides key, value and header bytes (varints, attributes), with margin. */
export const RECORD_OVERHEAD = 64;
/** A record batch's own header (61 bytes in the v2 format), with margin. */
export const BATCH_OVERHEAD = 128;

/** Size a message takes in a record batch (an upper bound). */
export function messageBytes(m: OutMessage): number {
  let n = RECORD_OVERHEAD + m.value.length + (m.key === null ? 0 : Buffer.byteLength(m.key));
  for (const [k, v] of Object.entries(m.headers ?? {})) {
    for (const one of Array.isArray(v) ? v : [v]) n += Buffer.byteLength(k) + Buffer.byteLength(one) + 10;
  }
  return n;
}

/** An id for a record that could not be parsed: its vqguard-id header, else its key. */
function fallbackId(m: InMessage): string | null {
  const h = headersAsStrings(m.headers)['vqguard-id'];
  if (h) return h.slice(0, 200);
  return m.key && m.key.length ? m.key.toString('utf8').slice(0, 200) : null;
}

function push(map: Map<string, OutMessage[]>, topic: string, m: OutMessage): void {
  const list = map.get(topic);
  if (list) list.push(m);
  else map.set(topic, [m]);
}

function errText(e: unknown): string {
  return cleanDetail(e instanceof Error ? e.message : String(e), 200);
}

type Decoded = { m: InMessage; input: GuardInput; pixels: Float32Array; format: DecodedFormat; originalSize: string };

/** `WxHxC`, as in the output headers vqguard-original-size and vqguard-model-size. */
export function sizeHeader(width: number, height: number, channels: number): string {
  return `${width}x${height}x${channels}`;
}

export async function processChunk(rt: TopicRuntime, topic: string, partition: number, messages: InMessage[], now = Date.now, opts: ChunkOptions = {}): Promise<ChunkResult> {
  const s = rt.settings;
  const clock = opts.now ?? now;
  const steps: ChunkSteps = { encodeImage: (p, w, h, c, f) => encodeImage(p, w, h, c, f), encodeGuardedImage, ...opts.steps };
  const stageMs = { parse: 0, decode: 0, tensor: 0, model: 0, encode: 0 };
  let tick = performance.now();
  const lap = (stage: keyof ChunkResult['stageMs']) => {
    const t = performance.now();
    stageMs[stage] += t - tick;
    tick = t;
  };
  const outcomes = new Map<InMessage, Outcome>();
  const dead = (m: InMessage, id: string | null, reason: ReasonCode, detail: string, alert?: Alert) => outcomes.set(m, { kind: 'dead', m, id, reason, detail, ...(alert ? { alert } : {}) });

  // Schema Registry (src/records/registry.ts): output schema ids, writer schemas of framed input.
  // An unreachable registry throws SchemaRegistryUnavailable: the runner retries, nothing is dead-lettered.
  const schemaIds = rt.registry ? await rt.registry.outputIds() : undefined;
  const writers = rt.registry && s.format !== 'raw' ? await rt.registry.writers(messages.map((m) => m.value)) : [];

  // 1. Decode: parse, then decode the images (on the image pool's workers when the topic has one).
  const parsedAll = messages.map((m, i) => {
    try {
      const w = writers[i];
      if (w && !w.ok) return { m, parsed: w };
      const opts = { fallbackId: `${topic}-${partition}-${m.offset}`, now: clock, ...(w ? { avro: { writerSchema: w.writer } } : {}) };
      return { m, parsed: parseInput({ value: w ? w.body : m.value, headers: m.headers ?? {}, key: m.key, timestamp: m.timestamp }, w ? 'avro' : s.format, opts) };
    } catch (e) {
      return { m, parsed: { ok: false as const, reason: 'bad_avro' as const, detail: `cannot read the record: ${errText(e)}` } };
    }
  });
  lap('parse');
  const good: Decoded[] = [];
  const toDecode: { m: InMessage; input: GuardInput }[] = [];
  for (const { m, parsed } of parsedAll) {
    if (!parsed.ok) dead(m, fallbackId(m), parsed.reason, parsed.detail);
    else toDecode.push({ m, input: parsed.input });
  }
  const decoded = (d: { m: InMessage; input: GuardInput }, img: PoolDecodeResult) => {
    if (img.ok === true) good.push({ m: d.m, input: d.input, pixels: img.pixels, format: img.format, originalSize: sizeHeader(img.sourceWidth, img.sourceHeight, img.sourceChannels) });
    else if (img.ok === false) dead(d.m, d.input.id, img.reason, img.detail);
    else if (img.ok === 'thrown') dead(d.m, d.input.id, 'corrupt_image', `decoding failed: ${cleanDetail(img.message, 200)}`);
    else dead(d.m, d.input.id, 'processing_error', `the image worker failed while decoding this record: ${cleanDetail(img.message, 200)}`);
  };
  if (rt.pool) {
    // Worker threads (src/consumer/imagePool.ts): same functions, same results, in order.
    const res = await rt.pool.decode(toDecode.map((d) => d.input.bytes), s.image);
    toDecode.forEach((d, i) => decoded(d, res[i]!));
  } else {
    // Main thread (sharp runs on its own thread pool: in parallel).
    await Promise.all(
      toDecode.map(async (d) => {
        let img: PoolDecodeResult;
        try {
          img = await decodeImage(d.input.bytes, s.image);
        } catch (e) {
          img = { ok: 'thrown', message: e instanceof Error ? e.message : String(e) };
        }
        decoded(d, img);
      }),
    );
  }
  good.sort((a, b) => messages.indexOf(a.m) - messages.indexOf(b.m));
  lap('decode');

  // 2. Inference: one tensor for the whole micro-batch; purify and detect.
  const { width: w, height: h } = s.image;
  const c = rt.channels;
  const size = h * w * c;
  const modelSize = sizeHeader(w, h, c);
  let raw: ReturnType<TopicRuntime['detector']['raw']> | undefined;
  let verdicts: Verdict[] = [];
  if (good.length) {
    try {
      const batch = new Float32Array(good.length * size);
      good.forEach((g, i) => batch.set(g.pixels, i * size));
      const x = tf.tensor4d(batch, [good.length, h, w, c]);
      lap('tensor');
      try {
        raw = await rt.detector.rawAsync(x);
        lap('model');
      } finally {
        x.dispose();
      }
      verdicts = rt.detector.verdicts(raw);
    } catch (e) {
      for (const g of good) dead(g.m, g.input.id, 'processing_error', errText(e));
      raw = undefined;
    }
  }

  // 3. Outcome per record: alert, cleaned image, GuardedImage.
  const pipeline = s.pipelines.join('+');
  if (raw) {
    const purified = raw.purified;
    // a. Verdict, alert, quarantine; which records need their cleaned image encoded.
    type Pending = { g: Decoded; i: number; v: Verdict; alert?: Alert; forwardOriginal: boolean; outFormat: OutputImageFormat; image?: Buffer; failure?: string };
    const pending: Pending[] = [];
    good.forEach((g, i) => {
      const v = verdicts[i]!;
      let alert: Alert | undefined;
      try {
        if (!Object.values(v.scores).every(Number.isFinite)) return dead(g.m, g.input.id, 'nan_input', 'a detection score is not finite');
        if (v.flagged) {
          alert = {
            id: g.input.id, topic, partition, offset: g.m.offset, pipeline, score: v.score, scores: v.scores,
            labelBefore: v.labelBefore, labelAfter: v.labelAfter, reason: `combined score ${v.score.toFixed(4)} > ${v.threshold.toFixed(4)}`,
            attributes: g.input.attributes ?? {}, at: clock(),
          };
          if (s.action === 'quarantine') return dead(g.m, g.input.id, 'quarantined', alert.reason, alert);
        }
        const outFormat: OutputImageFormat = s.image.outputFormat === 'input' && g.format !== 'svg' ? g.format : 'png';
        pending.push({ g, i, v, alert, forwardOriginal: s.action === 'forward-original', outFormat });
      } catch (e) {
        dead(g.m, g.input.id, 'encode_error', `encoding the output failed: ${errText(e)}`, alert);
      }
    });
    // b. Cleaned images: on the image pool's workers, or here (also when a test replaces the encoder).
    const toEncode = pending.filter((p) => !p.forwardOriginal);
    const pixelsOf = (p: Pending) => purified.subarray(p.i * size, (p.i + 1) * size);
    if (rt.pool && !opts.steps?.encodeImage) {
      const res = await rt.pool.encode(toEncode.map((p) => ({ pixels: pixelsOf(p), width: w, height: h, channels: c as 1 | 3, format: p.outFormat })));
      toEncode.forEach((p, k) => {
        const r = res[k]!;
        if (r.ok === true) p.image = r.bytes;
        else if (r.ok === 'thrown') p.failure = `encoding the output failed: ${cleanDetail(r.message, 200)}`;
        else p.failure = `the image worker failed while encoding this record: ${cleanDetail(r.message, 200)}`;
      });
    } else {
      await Promise.all(
        toEncode.map(async (p) => {
          try {
            p.image = await steps.encodeImage(pixelsOf(p), w, h, c as 1 | 3, p.outFormat, p.g.input.id);
          } catch (e) {
            p.failure = `encoding the output failed: ${errText(e)}`;
          }
        }),
      );
    }
    // c. The GuardedImage record per record.
    for (const { g, v, alert, forwardOriginal, outFormat, image, failure } of pending) {
      try {
        if (failure !== undefined) {
          dead(g.m, g.input.id, 'encode_error', failure, alert);
          continue;
        }
        const value = steps.encodeGuardedImage({
          id: g.input.id,
          contentType: forwardOriginal ? g.input.contentType : mimeType(outFormat),
          image: forwardOriginal ? g.input.bytes : image!, width: w, height: h,
          verdict: {
            flagged: v.flagged, score: v.score, scores: v.scores, labelBefore: v.labelBefore, labelAfter: v.labelAfter,
            confidenceBefore: v.confidenceBefore, confidenceAfter: v.confidenceAfter, threshold: v.threshold,
          },
          pipeline, modelVersions: rt.modelVersions, action: s.action,
          source: { topic, partition, offset: g.m.offset },
          label: g.input.label ?? null, attributes: g.input.attributes ?? {},
          producedAt: g.input.producedAt ?? Number(g.m.timestamp), guardedAt: clock(),
        });
        outcomes.set(g.m, {
          kind: 'output', m: g.m, id: g.input.id, value, alert,
          headers: { ...verdictHeaders(v, v.flagged), 'vqguard-original-size': g.originalSize, 'vqguard-model-size': modelSize },
          flagged: v.flagged, label: g.input.label ?? null, verdict: v,
        });
      } catch (e) {
        dead(g.m, g.input.id, 'encode_error', `encoding the output failed: ${errText(e)}`, alert);
      }
    }
  }
  lap('encode');
  const ordered = messages.map((m) => outcomes.get(m)!);
  return assemble(ordered, chunkTopics(s, topic, partition, schemaIds), { maxBytes: opts.maxBytes, now: clock }, stageMs);
}

export interface ChunkTopics {
  topic: string;
  partition: number;
  output: string;
  deadLetter: string;
  /** avro (default): the DeadLetter envelope; connect: Kafka Connect's DLQ convention. */
  deadLetterFormat?: 'avro' | 'connect';
  alerts: string;
  /** Schema Registry ids: values sent to these topics are framed (magic byte 0 + id). */
  schemaIds?: OutputSchemaIds;
}

export function chunkTopics(
  s: { output: string; deadLetter: string; deadLetterFormat?: 'avro' | 'connect'; alerts: string },
  topic: string,
  partition: number,
  schemaIds?: OutputSchemaIds,
): ChunkTopics {
  return { topic, partition, output: s.output, deadLetter: s.deadLetter, deadLetterFormat: s.deadLetterFormat ?? 'avro', alerts: s.alerts, ...(schemaIds ? { schemaIds } : {}) };
}

/**
 * Outcomes -> messages per topic, each fitted to its topic's limit. Pure apart from the clock;
 * the runner calls it again with smaller limits when the broker refuses a message as too large.
 */
export function assemble(
  outcomes: Outcome[],
  t: ChunkTopics,
  o: { maxBytes?: (topic: string) => number; now?: () => number } = {},
  stageMs: ChunkResult['stageMs'] = { parse: 0, decode: 0, tensor: 0, model: 0, encode: 0 },
): ChunkResult {
  const now = o.now ?? Date.now;
  const ids = t.schemaIds;
  // A framed value is FRAME_BYTES longer: fit the unframed message to the limit less that.
  const limit = (topic: string) => (o.maxBytes ? o.maxBytes(topic) : Infinity) - (ids ? FRAME_BYTES : 0);
  const framed = (m: OutMessage, id: number | undefined): OutMessage => (id === undefined ? m : { ...m, value: frameValue(id, m.value) });
  const res: ChunkResult = { out: new Map(), alerts: [], deadLetters: [], outputs: [], timestamps: [], stageMs, outcomes };
  const deadMsg = (oc: { m: InMessage; id: string | null; reason: ReasonCode; detail: string }) => {
    const ts = Number(oc.m.timestamp);
    const { msg, truncated } =
      t.deadLetterFormat === 'connect'
        ? fitConnectDeadLetter(oc.m, { topic: t.topic, partition: t.partition, reason: oc.reason, detail: oc.detail }, limit(t.deadLetter))
        : fitDeadLetter(
            {
              id: oc.id, reason: oc.reason, detail: oc.detail, original: oc.m.value ?? Buffer.alloc(0), headers: headersAsStrings(oc.m.headers), topic: t.topic, partition: t.partition,
              offset: oc.m.offset, at: now(), key: oc.m.key ?? null, timestamp: Number.isFinite(ts) ? ts : null,
            },
            limit(t.deadLetter),
            oc.m.key ?? oc.id,
          );
    // A Connect-format dead letter is the original bytes, never framed; an Avro envelope is framed when a registry is set.
    if (msg) push(res.out, t.deadLetter, t.deadLetterFormat === 'connect' ? msg : framed(msg, ids?.deadLetter));
    res.deadLetters.push({ id: oc.id, reason: oc.reason, offset: oc.m.offset, ...(truncated ? { truncated } : {}), ...(msg ? {} : { dropped: true }) });
    res.timestamps.push(ts);
  };
  for (const oc of outcomes) {
    if (oc.alert) {
      const msg = fitAlert(oc.alert, limit(t.alerts), `${t.topic}/${t.partition}/${oc.m.offset}`, oc.m, oc.kind === 'output' ? oc.headers : verdictHeaders(oc.alert));
      if (msg) {
        res.alerts.push(oc.alert);
        push(res.out, t.alerts, framed(msg, ids?.alerts));
      }
    }
    if (oc.kind === 'dead') {
      deadMsg(oc);
      continue;
    }
    // The input key (partitioning downstream does not change) and headers (traceparent,
    // correlation ids), plus the verdict headers (which replace input headers of the same name).
    const msg: OutMessage = { key: oc.m.key ?? null, value: oc.value, headers: { ...inputHeaders(oc.m), ...oc.headers } };
    const need = messageBytes(msg);
    if (need > limit(t.output)) {
      deadMsg({ m: oc.m, id: oc.id, reason: 'output_too_large', detail: `the output (${need} bytes) does not fit topic ${t.output} (max ${limit(t.output)} bytes per message)` });
      continue;
    }
    push(res.out, t.output, framed(msg, ids?.output));
    res.outputs.push({ id: oc.id, flagged: oc.flagged, offset: oc.m.offset, label: oc.label, verdict: oc.verdict });
    res.timestamps.push(Number(oc.m.timestamp));
  }
  return res;
}

/** The verdict headers of outputs and alerts. */
export function verdictHeaders(v: { score: number }, flagged = true): Record<string, string> {
  return { 'vqguard-flagged': String(flagged), 'vqguard-score': v.score.toFixed(6) };
}

/**
 * An alert message that fits `limit`: keyed by the input's key (by the record id when it had none),
 * with the input's headers plus the verdict headers and vqguard-source; without its attributes,
 * then without the input headers, if need be; null if even that does not fit.
 */
function fitAlert(a: Alert, limit: number, source: string, m: InMessage, verdict: Headers): OutMessage | null {
  const own = { ...verdict, 'vqguard-source': source };
  const key = m.key ?? a.id;
  let msg: OutMessage = { key, value: encodeAlert(a), headers: { ...inputHeaders(m), ...own } };
  if (messageBytes(msg) <= limit) return msg;
  const slim = encodeAlert({ ...a, id: a.id.slice(0, 1000), attributes: { 'vqguard-truncated': 'attributes removed: the alert did not fit the alert topic' } });
  msg = { key, value: slim, headers: { ...inputHeaders(m), ...own } };
  if (messageBytes(msg) <= limit) return msg;
  msg = { key: m.key ?? a.id.slice(0, 200), value: slim, headers: own };
  return messageBytes(msg) <= limit ? msg : null;
}

/** Kafka Connect's dead-letter context headers (ErrorReporter / DeadLetterQueueReporter names). */
export const CONNECT_HEADERS = {
  topic: '__connect.errors.topic',
  partition: '__connect.errors.partition',
  offset: '__connect.errors.offset',
  exceptionClass: '__connect.errors.exception.class.name',
  exceptionMessage: '__connect.errors.exception.message',
  connector: '__connect.errors.connector.name',
  stage: '__connect.errors.stage',
} as const;

/**
 * A Kafka-Connect-style dead letter: the original key, value, headers and timestamp verbatim, the
 * context in `__connect.errors.*` headers plus `vqguard-reason`. When it does not fit `limit`: the
 * input headers go first, then the value is cut to its first bytes (headers vqguard-truncated,
 * vqguard-original-length, vqguard-original-sha256; `dlq replay` will not send such a one back);
 * null when even an empty value does not fit.
 */
export function fitConnectDeadLetter(
  m: InMessage,
  c: { topic: string; partition: number; reason: ReasonCode | string; detail: string },
  limit: number,
): { msg: OutMessage | null; truncated: boolean } {
  const context: Record<string, string> = {
    [CONNECT_HEADERS.topic]: c.topic,
    [CONNECT_HEADERS.partition]: String(c.partition),
    [CONNECT_HEADERS.offset]: m.offset,
    [CONNECT_HEADERS.connector]: 'vqguard',
    [CONNECT_HEADERS.stage]: 'VQGUARD',
    [CONNECT_HEADERS.exceptionClass]: `io.vqguard.${c.reason}`,
    [CONNECT_HEADERS.exceptionMessage]: c.detail,
    'vqguard-reason': c.reason,
  };
  const base = { key: m.key ?? null, timestamp: m.timestamp };
  const whole: OutMessage = { ...base, value: m.value ?? Buffer.alloc(0), headers: { ...inputHeaders(m), ...context } };
  if (messageBytes(whole) <= limit) return { msg: whole, truncated: false };
  const original = m.value ?? Buffer.alloc(0);
  const sha = createHash('sha256').update(original).digest('hex');
  const cut = (n: number, withInput: boolean): OutMessage => ({
    ...base,
    value: original.subarray(0, n),
    headers: {
      ...(withInput ? inputHeaders(m) : {}),
      ...context,
      [CONNECT_HEADERS.exceptionMessage]: `${c.detail}; value truncated to its first ${n} of ${original.length} bytes to fit the dead-letter topic`,
      'vqguard-truncated': 'true',
      'vqguard-original-length': String(original.length),
      'vqguard-original-sha256': sha,
    },
  });
  for (const withInput of [true, false]) {
    const empty = cut(0, withInput);
    if (messageBytes(empty) > limit) continue;
    let keep = Math.max(0, Math.min(original.length - 1, limit - messageBytes(empty) - 16));
    let msg = cut(keep, withInput);
    while (messageBytes(msg) > limit && keep > 0) {
      keep = Math.max(0, keep - (messageBytes(msg) - limit) - 16);
      msg = cut(keep, withInput);
    }
    return { msg, truncated: true };
  }
  return { msg: null, truncated: true };
}

/**
 * A dead-letter message that fits `limit`: the original as is when it fits, else its first bytes
 * with originalLength and originalSha256 set, the detail saying so, and header vqguard-truncated.
 */
export function fitDeadLetter(d: DeadLetterInput, limit: number, key: Buffer | string | null = d.id ?? null): { msg: OutMessage | null; truncated: boolean } {
  const headers: Record<string, string> = { 'vqguard-reason': d.reason };
  const whole: OutMessage = { key, value: encodeDeadLetter(d), headers };
  if (messageBytes(whole) <= limit) return { msg: whole, truncated: false };
  const original = d.original;
  const sha = createHash('sha256').update(original).digest('hex');
  // What is left for the original once everything else is encoded (ids and headers of a huge record are cut too).
  const id = d.id === null || d.id === undefined ? null : d.id.slice(0, 200);
  const hdrs = Object.fromEntries(Object.entries(d.headers ?? {}).map(([k, v]) => [k.slice(0, 200), v.slice(0, 1000)]).slice(0, 50));
  let keep = 0;
  const make = (n: number, h: Record<string, string>) => {
    const rec: DeadLetterInput = {
      ...d, id, headers: h, original: original.subarray(0, n), originalLength: original.length, originalSha256: sha,
      detail: `${d.detail}; original truncated to its first ${n} of ${original.length} bytes (sha256 ${sha}) to fit the dead-letter topic`,
    };
    return { key: typeof key === 'string' ? key.slice(0, 200) : key !== null && key.length > 1000 ? null : key, value: encodeDeadLetter(rec), headers: { ...headers, 'vqguard-truncated': 'true' } } as OutMessage;
  };
  let h = hdrs;
  let base = messageBytes(make(0, h));
  if (base > limit) {
    h = {};
    base = messageBytes(make(0, h));
  }
  keep = Math.max(0, Math.min(original.length - 1, limit - base - 10));
  let msg = make(keep, h);
  while (messageBytes(msg) > limit && keep > 0) {
    keep = Math.max(0, keep - (messageBytes(msg) - limit) - 16);
    msg = make(keep, h);
  }
  return { msg: messageBytes(msg) <= limit ? msg : null, truncated: true };
}
