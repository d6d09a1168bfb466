/**
 * One micro-batch of one input partition: parse -> decode -> purify + detect -> encode.
 * Returns the messages to produce (outputs, alerts, dead letters); nothing is sent here.
 * Every input message ends in exactly one output or one dead letter.
 */
import { tf } from '../backend/tf.ts';
import { parseInput } from '../records/input.ts';
import { decodeImage, encodeImage, mimeType, type OutputImageFormat } from '../image/decode.ts';
import { encodeAlert, encodeDeadLetter, encodeGuardedImage, type Alert } from '../records/avro.ts';
import type { ReasonCode } from '../records/reasons.ts';
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

export interface OutMessage {
  key: string | null;
  value: Buffer;
  headers?: Record<string, string>;
}

/** An alert as produced to the alert topic (the Avro Alert record). */
export type AlertEvent = Alert;

export interface ChunkResult {
  /** topic -> messages */
  out: Map<string, OutMessage[]>;
  alerts: AlertEvent[];
  deadLetters: { id: string | null; reason: string; offset: string }[];
  outputs: { id: string; flagged: boolean; offset: string; label: number | null; verdict: Verdict }[];
  /** Record timestamps (ms) for end-to-end latency. */
  timestamps: number[];
  /** Milliseconds spent per stage in this chunk (parse = Avro/headers, decode = image decode). */
  stageMs: { parse: number; decode: number; tensor: number; model: number; encode: number };
}

function flatHeaders(h: InMessage['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h ?? {})) {
    if (v === undefined) continue;
    const one = Array.isArray(v) ? v[0] : v;
    if (one === undefined) continue;
    out[k] = typeof one === 'string' ? one : one.toString('utf8');
  }
  return out;
}

/** An id for a record that could not be parsed: its vqguard-id header, else its key. */
function fallbackId(m: InMessage): string | null {
  const h = flatHeaders(m.headers)['vqguard-id'];
  if (h) return h.slice(0, 200);
  return m.key && m.key.length ? m.key.toString('utf8').slice(0, 200) : null;
}

function push(map: Map<string, OutMessage[]>, topic: string, m: OutMessage): void {
  const list = map.get(topic);
  if (list) list.push(m);
  else map.set(topic, [m]);
}

export async function processChunk(rt: TopicRuntime, topic: string, partition: number, messages: InMessage[], now = Date.now): Promise<ChunkResult> {
  const s = rt.settings;
  const res: ChunkResult = { out: new Map(), alerts: [], deadLetters: [], outputs: [], timestamps: [], stageMs: { parse: 0, decode: 0, tensor: 0, model: 0, encode: 0 } };
  let tick = performance.now();
  const lap = (stage: keyof ChunkResult['stageMs']) => {
    const t = performance.now();
    res.stageMs[stage] += t - tick;
    tick = t;
  };
  const dead = (m: InMessage, id: string | null, reason: ReasonCode, detail: string) => {
    push(res.out, s.deadLetter, {
      key: id,
      value: encodeDeadLetter({
        id, reason, detail,
        original: m.value ?? Buffer.alloc(0),
        headers: flatHeaders(m.headers),
        topic, partition, offset: m.offset, at: now(),
      }),
      headers: { 'vqguard-reason': reason },
    });
    res.deadLetters.push({ id, reason, offset: m.offset });
  };

  // 1. Parse, then decode (sharp runs on its own thread pool; decode in parallel).
  const parsedAll = messages.map((m) => ({
    m,
    parsed: parseInput(
      { value: m.value, headers: m.headers ?? {}, key: m.key, timestamp: m.timestamp },
      s.format,
      { fallbackId: `${topic}-${partition}-${m.offset}`, now },
    ),
  }));
  lap('parse');
  const decoded = await Promise.all(
    parsedAll.map(async ({ m, parsed }) => {
      if (!parsed.ok) return { m, fail: parsed } as const;
      const img = await decodeImage(parsed.input.bytes, s.image);
      if (!img.ok) return { m, input: parsed.input, fail: img } as const;
      return { m, input: parsed.input, img } as const;
    }),
  );

  const good: { m: InMessage; input: GuardInput; pixels: Float32Array; format: DecodedFormat }[] = [];
  for (const d of decoded) {
    if ('fail' in d && d.fail) dead(d.m, d.input?.id ?? fallbackId(d.m), d.fail.reason, d.fail.detail);
    else if ('img' in d && d.img && d.img.ok) good.push({ m: d.m, input: d.input!, pixels: d.img.pixels, format: d.img.format });
  }
  lap('decode');
  if (good.length === 0) return res;

  // 2. One tensor for the whole micro-batch; purify and detect.
  const { width: w, height: h } = s.image;
  const c = rt.channels;
  const size = h * w * c;
  const batch = new Float32Array(good.length * size);
  good.forEach((g, i) => batch.set(g.pixels, i * size));
  let raw;
  try {
    const x = tf.tensor4d(batch, [good.length, h, w, c]);
    lap('tensor');
    try {
      raw = await rt.detector.rawAsync(x);
      lap('model');
    } finally {
      x.dispose();
    }
  } catch (e) {
    for (const g of good) dead(g.m, g.input.id, 'processing_error', (e as Error).message.slice(0, 200));
    return res;
  }
  const verdicts = rt.detector.verdicts(raw);

  // 3. Outputs, alerts, dead letters.
  const pipeline = s.pipelines.join('+');
  await Promise.all(
    good.map(async (g, i) => {
      const v = verdicts[i]!;
      if (!Object.values(v.scores).every(Number.isFinite)) {
        dead(g.m, g.input.id, 'nan_input', 'a detection score is not finite');
        return;
      }
      if (v.flagged) {
        const alert: AlertEvent = {
          id: g.input.id, topic, partition, offset: g.m.offset, pipeline, score: v.score, scores: v.scores,
          labelBefore: v.labelBefore, labelAfter: v.labelAfter, reason: `combined score ${v.score.toFixed(4)} > ${v.threshold.toFixed(4)}`,
          attributes: g.input.attributes ?? {}, at: now(),
        };
        res.alerts.push(alert);
        push(res.out, s.alerts, { key: g.input.id, value: encodeAlert(alert), headers: { 'vqguard-source': `${topic}/${partition}/${g.m.offset}` } });
        if (s.action === 'quarantine') {
          dead(g.m, g.input.id, 'quarantined', alert.reason);
          return;
        }
      }
      const forwardOriginal = s.action === 'forward-original';
      const outFormat: OutputImageFormat = s.image.outputFormat === 'input' && g.format !== 'svg' ? g.format : 'png';
      const image = forwardOriginal
        ? g.input.bytes
        : await encodeImage(raw.purified.subarray(i * size, (i + 1) * size), w, h, c as 1 | 3, outFormat);
      push(res.out, s.output, {
        key: g.input.id,
        value: encodeGuardedImage({
          id: g.input.id,
          contentType: forwardOriginal ? g.input.contentType : mimeType(outFormat),
          image, width: w, height: h,
          verdict: {
            flagged: v.flagged, score: v.score, scores: v.scores, labelBefore: v.labelBefore, labelAfter: v.labelAfter,
            confidenceBefore: v.confidenceBefore, confidenceAfter: v.confidenceAfter, threshold: v.threshold,
          },
          pipeline, modelVersions: rt.modelVersions, action: s.action,
          source: { topic, partition, offset: g.m.offset },
          label: g.input.label ?? null, attributes: g.input.attributes ?? {},
          producedAt: g.input.producedAt ?? Number(g.m.timestamp), guardedAt: now(),
        }),
        headers: { 'vqguard-flagged': String(v.flagged), 'vqguard-score': v.score.toFixed(6) },
      });
      res.outputs.push({ id: g.input.id, flagged: v.flagged, offset: g.m.offset, label: g.input.label ?? null, verdict: v });
      res.timestamps.push(Number(g.m.timestamp));
    }),
  );
  lap('encode');
  for (const d of res.deadLetters) {
    const m = messages.find((x) => x.offset === d.offset);
    if (m) res.timestamps.push(Number(m.timestamp));
  }
  return res;
}
