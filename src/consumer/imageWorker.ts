/**
 * Worker-thread entry of the image pool (src/consumer/imagePool.ts, piscina): decodes or encodes
 * a slice of one micro-batch with the same functions the main thread uses (src/image/decode.ts,
 * its PNG fast path and sharp), so a record's result is the same wherever it ran.
 *
 * Inputs and outputs travel as one ArrayBuffer per task (concatenated records plus their end
 * offsets), transferred both ways, not copied. A record's failure is data (a reason and a
 * detail, or the message of what was thrown), never a failed task: a failed task means the
 * worker itself failed (crashed, ended, timed out), which the pool handles.
 *
 * Loads neither TensorFlow nor kafkajs.
 */
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { decodeImage, encodeImage, type DecodeImageReason, type ImageFormat, type ImagePolicy, type OutputImageFormat } from '../image/decode.ts';

export interface DecodeTask {
  kind: 'decode';
  /** The records' image bytes, concatenated. */
  input: ArrayBuffer;
  /** End offset of each record in `input`. */
  ends: number[];
  policy: Partial<ImagePolicy>;
}

/** One record's decode result without its pixels (they are in DecodeReply.pixels, in order). */
export type DecodeItem =
  | { ok: true; length: number; width: number; height: number; channels: 1 | 3; format: ImageFormat; sourceWidth: number; sourceHeight: number; sourceChannels: 1 | 3 }
  | { ok: false; reason: DecodeImageReason; detail: string }
  | { ok: 'thrown'; message: string };

export interface DecodeReply {
  /** Float32 pixels of the records that decoded, concatenated. */
  pixels: ArrayBuffer;
  items: DecodeItem[];
}

export interface EncodeSpec {
  width: number;
  height: number;
  channels: 1 | 3;
  format: OutputImageFormat;
}

export interface EncodeTask {
  kind: 'encode';
  /** Float32 pixels of the records, concatenated (each width x height x channels values). */
  pixels: ArrayBuffer;
  /** Each record's spec and its number of values in `pixels`. */
  items: (EncodeSpec & { length: number })[];
}

export type EncodeItem = { ok: true; length: number } | { ok: 'thrown'; message: string };

export interface EncodeReply {
  /** The encoded images, concatenated. */
  bytes: ArrayBuffer;
  items: EncodeItem[];
}

/** A tiny task that proves a worker starts and runs (the pool's start-up check). */
export interface PingTask {
  kind: 'ping';
}

export type ImageTask = DecodeTask | EncodeTask | PingTask;

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

export async function decodeSlice(t: DecodeTask): Promise<DecodeReply> {
  const input = new Uint8Array(t.input);
  const items: DecodeItem[] = [];
  const parts: Float32Array[] = [];
  let start = 0;
  for (const end of t.ends) {
    // A Buffer view (no copy): decode.ts hands Buffers to sharp as they are.
    const bytes = Buffer.from(input.buffer, input.byteOffset + start, end - start);
    start = end;
    try {
      const r = await decodeImage(bytes, t.policy);
      if (r.ok) {
        parts.push(r.pixels);
        items.push({ ok: true, length: r.pixels.length, width: r.width, height: r.height, channels: r.channels, format: r.format, sourceWidth: r.sourceWidth, sourceHeight: r.sourceHeight, sourceChannels: r.sourceChannels });
      } else items.push({ ok: false, reason: r.reason, detail: r.detail });
    } catch (e) {
      items.push({ ok: 'thrown', message: message(e) });
    }
  }
  const pixels = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    pixels.set(p, o);
    o += p.length;
  }
  return { pixels: pixels.buffer, items };
}

export async function encodeSlice(t: EncodeTask): Promise<EncodeReply> {
  const all = new Float32Array(t.pixels);
  const items: EncodeItem[] = [];
  const parts: Buffer[] = [];
  let o = 0;
  for (const s of t.items) {
    const n = s.length;
    const px = all.subarray(o, o + n);
    o += n;
    try {
      const b = await encodeImage(px, s.width, s.height, s.channels, s.format);
      parts.push(b);
      items.push({ ok: true, length: b.length });
    } catch (e) {
      items.push({ ok: 'thrown', message: message(e) });
    }
  }
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  return { bytes: bytes.buffer, items };
}

/** The reply, with its buffer transferred to the caller (not copied). */
function moved<T>(value: T, buffer: ArrayBuffer): unknown {
  return move({ [transferableSymbol]: buffer, [valueSymbol]: value } as never);
}

export default async function run(t: ImageTask): Promise<unknown> {
  if (t.kind === 'ping') return { ok: true, pid: process.pid };
  if (t.kind === 'decode') {
    const r = await decodeSlice(t);
    return moved(r, r.pixels);
  }
  if (t.kind === 'encode') {
    const r = await encodeSlice(t);
    return moved(r, r.bytes);
  }
  throw new Error(`image worker: unknown task ${String((t as { kind?: unknown }).kind)}`);
}
