/**
 * Reason codes for messages the guard cannot process. They go into dead letters (DeadLetter.reason),
 * metrics labels and logs, so they are a closed, stable list: add codes, never rename them.
 */
export const REASON_CODES = [
  // records (src/records)
  'empty', //              null or zero-length message value / image
  'bad_avro', //           not decodable as Avro for the schema (garbage, truncated mid-value, invalid UTF-8, ...)
  'schema_mismatch', //    decodes but does not fit: trailing bytes, incompatible writer schema, Confluent framing
  'missing_field', //      a required field is absent (record ends at a field boundary; writer lacks the field)
  'bad_header', //         a vqguard-* header is malformed (e.g. vqguard-label not an integer)
  'unknown_schema', //     Schema Registry framing with a schema id the registry does not know (src/records/registry.ts)
  // images (src/image/decode.ts)
  'too_large_bytes', //    encoded size above policy.maxBytes
  'too_many_pixels', //    header declares more than policy.maxPixels (checked before decoding)
  'unsupported_format', // not a recognised image format
  'format_not_allowed', // a recognised format that the topic's policy does not allow (SVG by default)
  'corrupt_image', //      truncated or corrupt image data
  'size_mismatch', //      dimensions differ from the target and policy.resize is 'reject'
  'alpha_not_allowed', //  has an alpha channel and policy.alpha is 'reject'
  'animated_image', //     more than one frame/page and policy.animated is 'reject'
  'high_bit_depth', //     more than 8 bits per sample and policy.highBitDepth is 'reject'
  'cmyk_not_allowed', //   CMYK and policy.cmyk is 'reject'
  'colour_mismatch', //   colour image on a grey topic or grey image on a colour topic, and policy.colourMismatch is 'reject'
  'nan_input', //          NaN or infinite value in the decoded pixels or the detection scores
  // guard (src/consumer)
  'quarantined', //        flagged on a topic whose action is 'quarantine' (the alert is sent too)
  'processing_error', //   the model step failed for the micro-batch (details in the dead letter)
  'encode_error', //       encoding this record's cleaned image or its output record failed
  'output_too_large', //   the record's output does not fit the output topic's max.message.bytes
  'poison', //             processing this record failed consumer.poisonAttempts times in a row
] as const;

export type ReasonCode = (typeof REASON_CODES)[number];

export function isReasonCode(s: string): s is ReasonCode {
  return (REASON_CODES as readonly string[]).includes(s);
}

/** A failed step: a reason code and a human-readable detail (never containing payload bytes). */
export interface Failure<R extends ReasonCode = ReasonCode> {
  ok: false;
  reason: R;
  detail: string;
}

export function fail<R extends ReasonCode>(reason: R, detail: string): Failure<R> {
  return { ok: false, reason, detail };
}

/** Shortens and sanitises a message from a library (control characters out, bounded length). */
export function cleanDetail(message: string, max = 240): string {
  // eslint-disable-next-line no-control-regex
  const s = message.replace(/[\u0000-\u001f\u007f-\u009f\ufffd]+/g, ' ').replace(/\s+/g, ' ').trim();
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}
