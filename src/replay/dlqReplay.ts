/**
 * `vqguard dlq replay`: sends chosen dead letters back to an input topic, with the original key,
 * value and headers. Reads both dead-letter formats:
 *   - avro: the DeadLetter envelope (schemas/DeadLetter.avsc), including envelopes written before
 *     it carried `key` and `timestamp` (decoded with that older schema; the key is then the
 *     message key, which was the record id);
 *   - connect: Kafka Connect's convention (the original record verbatim, context in
 *     `__connect.errors.*` headers), recognised by its `__connect.errors.topic` header.
 * The context headers (`__connect.errors.*`, `vqguard-reason`, `vqguard-truncated`,
 * `vqguard-original-*`) are not sent back; `vqguard-replayed-from: <dlq>/<partition>/<offset>` is
 * added. A dead letter whose original was truncated to fit the dead-letter topic is never sent
 * (it is counted as `truncated`). Reading uses a throwaway group and commits nothing
 * (src/replay/readRange.ts): run it again and the same dead letters are read again.
 */
import { Kafka, logLevel, Partitioners, type IHeaders, type Message } from 'kafkajs';
import avro from 'avsc';
import { decodeDeadLetter, deadLetterType, type DeadLetter } from '../records/avro.ts';
import { headersAsStrings } from '../records/input.ts';
import type { InMessage } from '../consumer/processChunk.ts';
import { readRange, resolveRange } from './readRange.ts';
import { registerAvailableCodecs } from '../kafka/codecs.ts';

export interface DlqReplayOptions {
  brokers: string[];
  /** The dead-letter topic to read. */
  topic: string;
  /** Where to send the originals (normally the guard's input topic). */
  to: string;
  /** Only dead letters with one of these reason codes (default: all). */
  reasons?: string[];
  /** First offset, every partition (default: the earliest). */
  fromOffset?: bigint;
  /** Send at most this many (default: no limit). */
  limit?: number;
  /** Read and count, send nothing. */
  dryRun?: boolean;
  clientId?: string;
  idleTimeoutMs?: number;
}

export type SkipCause = 'reason' | 'truncated' | 'undecodable' | 'limit';

export interface DlqReplayResult {
  topic: string;
  to: string;
  read: number;
  sent: number;
  /** Formats of the dead letters read. */
  formats: { avro: number; connect: number };
  /** Sent (or, dry run, to be sent) per reason code. */
  byReason: Record<string, number>;
  skipped: Record<SkipCause, number>;
  dryRun: boolean;
}

/** One dead letter, as read back: what to send and why it was dead-lettered. */
export interface ReadDeadLetter {
  format: 'avro' | 'connect';
  reason: string;
  truncated: boolean;
  key: Buffer | string | null;
  value: Buffer | null;
  headers: IHeaders;
}

const CONTEXT_HEADER = /^(__connect\.errors\.|vqguard-reason$|vqguard-truncated$|vqguard-original-)/;

/** The DeadLetter schema before `key` and `timestamp` were added (envelopes written by earlier versions). */
const V1_FIELDS = new Set(['key', 'timestamp']);
const deadLetterV1 = avro.Type.forSchema({
  ...(deadLetterType.schema() as { type: 'record'; name: string; fields: { name: string }[] }),
  fields: (deadLetterType.schema() as { fields: { name: string }[] }).fields.filter((f) => !V1_FIELDS.has(f.name)),
} as avro.Schema);

function decodeEnvelope(buf: Buffer): DeadLetter | null {
  const now = decodeDeadLetter(buf);
  if (now.ok) return now.record;
  const v1 = decodeDeadLetter(buf, { writerSchema: deadLetterV1 });
  return v1.ok ? v1.record : null;
}

/** Reads one dead letter of either format; null when it is neither. */
export function readDeadLetter(m: InMessage): ReadDeadLetter | null {
  const raw = m.headers ?? {};
  const strings = headersAsStrings(raw as Record<string, Buffer | string | (Buffer | string)[]>);
  if (strings['__connect.errors.topic'] !== undefined) {
    const headers: IHeaders = {};
    for (const [k, v] of Object.entries(raw)) if (v !== undefined && !CONTEXT_HEADER.test(k)) headers[k] = v;
    const reason = strings['vqguard-reason'] ?? strings['__connect.errors.exception.class.name'] ?? 'unknown';
    return { format: 'connect', reason, truncated: strings['vqguard-truncated'] === 'true', key: m.key ?? null, value: m.value, headers };
  }
  if (!m.value) return null;
  const d = decodeEnvelope(m.value);
  if (!d) return null;
  return {
    format: 'avro',
    reason: d.reason,
    truncated: d.originalLength !== null,
    // Envelopes without a key field were keyed by the record id: the best there is.
    key: d.key ?? m.key ?? null,
    value: d.original,
    headers: d.headers,
  };
}

export async function dlqReplay(o: DlqReplayOptions): Promise<DlqReplayResult> {
  registerAvailableCodecs(); // dead letters the guard wrote compressed (producer.compression)
  const kafka = new Kafka({ clientId: o.clientId ?? 'vqguard-dlq-replay', brokers: o.brokers, logLevel: logLevel.WARN });
  const admin = kafka.admin();
  await admin.connect();
  let ranges;
  try {
    const topics = await admin.listTopics();
    for (const t of [o.topic, o.to]) if (!topics.includes(t)) throw new Error(`topic ${t} does not exist`);
    ranges = await resolveRange(admin, o.topic, o.fromOffset !== undefined ? { from: { offset: o.fromOffset } } : {});
  } finally {
    await admin.disconnect();
  }
  const res: DlqReplayResult = {
    topic: o.topic, to: o.to, read: 0, sent: 0, formats: { avro: 0, connect: 0 }, byReason: {},
    skipped: { reason: 0, truncated: 0, undecodable: 0, limit: 0 }, dryRun: Boolean(o.dryRun),
  };
  const wanted = o.reasons?.length ? new Set(o.reasons) : null;
  const limit = o.limit ?? Infinity;
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner, retry: { retries: Number.MAX_SAFE_INTEGER, maxRetryTime: 5000 } });
  if (!o.dryRun) await producer.connect();
  try {
    await readRange({
      kafka,
      topic: o.topic,
      ranges,
      groupId: `vqguard-dlq-replay-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
      idleTimeoutMs: o.idleTimeoutMs,
      onBatch: async (partition, messages) => {
        const out: Message[] = [];
        for (const m of messages) {
          res.read++;
          const d = readDeadLetter(m);
          if (!d) {
            res.skipped.undecodable++;
            continue;
          }
          res.formats[d.format]++;
          if (wanted && !wanted.has(d.reason)) res.skipped.reason++;
          else if (d.truncated) res.skipped.truncated++;
          else if (res.sent + out.length >= limit) res.skipped.limit++;
          else {
            out.push({ key: d.key, value: d.value, headers: { ...d.headers, 'vqguard-replayed-from': `${o.topic}/${partition}/${m.offset}` } });
            res.byReason[d.reason] = (res.byReason[d.reason] ?? 0) + 1;
          }
        }
        if (out.length && !o.dryRun) await producer.send({ topic: o.to, acks: -1, messages: out });
        res.sent += out.length;
      },
    });
  } finally {
    if (!o.dryRun) await producer.disconnect();
  }
  return res;
}
