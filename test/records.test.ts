import { test } from 'node:test';
import assert from 'node:assert/strict';
import avro from 'avsc';
import {
  decodeAlert, decodeDeadLetter, decodeGuardedImage, decodeImageRecord, encodeAlert, encodeDeadLetter,
  encodeGuardedImage, encodeImageRecord, imageRecordType, type GuardedImage,
} from '../src/records/avro.ts';
import { parseInput, sniffImage } from '../src/records/input.ts';
import { REASON_CODES, isReasonCode } from '../src/records/reasons.ts';

const PNG_HEAD = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]);

function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('ImageRecord round-trips, with and without optional fields', () => {
  const full = {
    id: 'img-1', contentType: 'image/png', image: PNG_HEAD, width: 28, height: 28, label: 7,
    attributes: { source: 'camera-3', é: 'ü' }, producedAt: 1_732_000_000_123,
  };
  const r = decodeImageRecord(encodeImageRecord(full));
  assert.ok(r.ok, JSON.stringify(r));
  assert.deepEqual(r.record, full);

  const minimal = decodeImageRecord(encodeImageRecord({ id: 'm', contentType: 'image/png', image: PNG_HEAD, producedAt: 0 }));
  assert.ok(minimal.ok);
  assert.deepEqual(minimal.record, { id: 'm', contentType: 'image/png', image: PNG_HEAD, width: null, height: null, label: null, attributes: {}, producedAt: 0 });
});

test('GuardedImage, Alert and DeadLetter round-trip', () => {
  const g: GuardedImage = {
    id: 'img-1', contentType: 'image/png', image: PNG_HEAD, width: 28, height: 28,
    verdict: {
      flagged: true, score: 0.93, scores: { labelFlip: 1, l1: 0.12, js: 0.3, recon: 0.05, reconWorstTile: 0.2, combined: 0.93 },
      labelBefore: 3, labelAfter: 8, confidenceBefore: 0.99, confidenceAfter: 0.7, threshold: 0.5,
    },
    pipeline: 'split2>full', modelVersions: { classifier: 'abc123', 'purifier-split2': 'def456' }, action: 'forward-cleaned',
    source: { topic: 'images.raw', partition: 2, offset: '9007199254740993' }, label: null, attributes: { a: 'b' },
    producedAt: 1, guardedAt: 2,
  };
  const gr = decodeGuardedImage(encodeGuardedImage(g));
  assert.ok(gr.ok);
  assert.deepEqual(gr.record, g);

  const a = {
    id: 'img-1', topic: 'images.raw', partition: 0, offset: '42', pipeline: 'split2>full', score: 0.9, scores: { combined: 0.9 },
    labelBefore: 1, labelAfter: 7, reason: 'combined 0.90 > 0.50', attributes: {}, at: 5,
  };
  const ar = decodeAlert(encodeAlert(a));
  assert.ok(ar.ok);
  assert.deepEqual(ar.record, a);

  const d = { id: null, reason: 'bad_avro', detail: 'x', original: Buffer.from([1, 2, 3]), headers: { k: 'v' }, topic: 't', partition: 1, offset: '7', at: 9, originalLength: null, originalSha256: null, key: Buffer.from('k1'), timestamp: 1700000000000 };
  const dr = decodeDeadLetter(encodeDeadLetter(d));
  assert.ok(dr.ok);
  assert.deepEqual(dr.record, d);
});

test('encoding an invalid value throws a message naming the field', () => {
  assert.throws(
    () => encodeAlert({ id: 'x', topic: 't', partition: 0, offset: '1', pipeline: 'full', score: 'high' as unknown as number, scores: {}, labelBefore: 1, labelAfter: 1, reason: 'r', at: 1 }),
    /cannot encode Alert: score: expected double/,
  );
});

test('garbage bytes -> bad_avro, never a throw, never a hang', () => {
  for (const b of [Buffer.from('hello, this is definitely not avro'), Buffer.alloc(0), Buffer.from([0xff, 0xff, 0xff])]) {
    const r = decodeImageRecord(b);
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.reason, 'bad_avro');
  }
  // A map block claiming 2^49 entries: avsc alone would loop for minutes.
  const good = encodeImageRecord({ id: 'a', contentType: 'image/png', image: Buffer.from([1, 2]), producedAt: 5 });
  const evil = Buffer.concat([good.subarray(0, good.length - 2), Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02])]);
  const t0 = Date.now();
  const r = decodeImageRecord(evil);
  assert.ok(Date.now() - t0 < 200);
  assert.equal(!r.ok && r.reason, 'bad_avro');
  // Deterministic random buffers: always a clean failure with a known reason.
  const rnd = mulberry32(7);
  for (let i = 0; i < 300; i++) {
    const buf = Buffer.from(Array.from({ length: 1 + (i % 97) }, () => Math.floor(rnd() * 256)));
    const res = decodeImageRecord(buf);
    if (!res.ok) assert.ok(['bad_avro', 'schema_mismatch', 'missing_field'].includes(res.reason) && res.detail.length > 0);
  }
});

test('a record written with another schema is not ok', () => {
  const other = avro.Type.forSchema({ type: 'record', name: 'Other', fields: [{ name: 'x', type: 'int' }, { name: 'y', type: 'string' }] });
  const r = decodeImageRecord(other.toBuffer({ x: 3, y: 'hello world' }));
  assert.equal(r.ok, false);
  assert.ok(!r.ok && (r.reason === 'schema_mismatch' || r.reason === 'bad_avro'), JSON.stringify(r));

  // A complete ImageRecord followed by more fields: trailing bytes.
  const longer = avro.Type.forSchema({
    type: 'record', name: 'ImageRecord', namespace: 'io.vqguard', fields: [...(imageRecordType.schema() as { fields: avro.Schema[] }).fields, { name: 'extra', type: 'string' }],
  } as avro.Schema);
  const lb = longer.toBuffer({ id: 'x', contentType: 'image/png', image: PNG_HEAD, width: null, height: null, label: null, attributes: {}, producedAt: 1, extra: 'more' });
  const lr = decodeImageRecord(lb);
  assert.equal(!lr.ok && lr.reason, 'schema_mismatch');
  assert.match(!lr.ok ? lr.detail : '', /trailing/);
  // ...which reads fine when the writer schema is given (schema resolution).
  const resolved = decodeImageRecord(lb, { writerSchema: longer });
  assert.ok(resolved.ok, JSON.stringify(resolved));
  assert.equal(resolved.record.id, 'x');

  // Confluent Schema Registry framing is named in the detail.
  const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, 42]), encodeImageRecord({ id: 'a', contentType: 'image/png', image: PNG_HEAD, producedAt: 1 })]);
  const fr = decodeImageRecord(framed);
  assert.equal(!fr.ok && fr.reason, 'schema_mismatch');
  assert.match(!fr.ok ? fr.detail : '', /Confluent/);
});

test('missing fields -> missing_field', () => {
  const fewer = avro.Type.forSchema({
    type: 'record', name: 'ImageRecord', namespace: 'io.vqguard',
    fields: [{ name: 'id', type: 'string' }, { name: 'contentType', type: 'string' }, { name: 'image', type: 'bytes' }],
  });
  const b = fewer.toBuffer({ id: 'x', contentType: 'image/png', image: PNG_HEAD });
  const r = decodeImageRecord(b);
  assert.equal(!r.ok && r.reason, 'missing_field');
  assert.match(!r.ok ? r.detail : '', /"producedAt"/);
  const w = decodeImageRecord(b, { writerSchema: fewer });
  assert.equal(!w.ok && w.reason, 'missing_field');
  assert.match(!w.ok ? w.detail : '', /"producedAt"/);
});

test('raw mode: metadata from headers, key and fallback', () => {
  const msg = {
    value: PNG_HEAD,
    key: Buffer.from('key-1'),
    headers: {
      'vqguard-id': Buffer.from('hdr-id'), 'content-type': 'image/png', 'vqguard-label': Buffer.from('7'),
      'vqguard-produced-at': '1700000000000', 'vqguard-attr-camera': Buffer.from('north'), 'VQGuard-Attr-Site': 'x', other: 'ignored',
    },
  };
  const r = parseInput(msg, 'raw', { fallbackId: 't-0-1' });
  assert.ok(r.ok);
  assert.deepEqual(r.input, {
    id: 'hdr-id', contentType: 'image/png', bytes: PNG_HEAD, label: 7, attributes: { camera: 'north', Site: 'x' }, producedAt: 1_700_000_000_000, source: 'raw',
  });

  const k = parseInput({ value: PNG_HEAD, key: 'key-2', timestamp: '123' }, 'raw', { fallbackId: 't-0-2' });
  assert.ok(k.ok);
  assert.equal(k.input.id, 'key-2');
  assert.equal(k.input.contentType, 'image/png'); // sniffed
  assert.equal(k.input.producedAt, 123); // message timestamp
  assert.equal(k.input.label, undefined);

  const f = parseInput({ value: PNG_HEAD, key: null, headers: { 'vqguard-produced-at': '2024-01-02T03:04:05Z' } }, 'raw', { fallbackId: 'images.raw-3-99' });
  assert.ok(f.ok);
  assert.equal(f.input.id, 'images.raw-3-99');
  assert.equal(f.input.producedAt, Date.UTC(2024, 0, 2, 3, 4, 5));

  const bad = parseInput({ value: PNG_HEAD, headers: { 'vqguard-label': 'seven' } }, 'raw', { fallbackId: 'x' });
  assert.equal(!bad.ok && bad.reason, 'bad_header');

  for (const value of [null, Buffer.alloc(0)]) {
    const e = parseInput({ value }, 'auto', { fallbackId: 'x' });
    assert.equal(!e.ok && e.reason, 'empty');
  }
});

test('avro mode maps the record; auto mode sniffs images and falls back to Avro', () => {
  const rec = encodeImageRecord({ id: 'r1', contentType: 'image/png', image: PNG_HEAD, width: 28, height: 28, label: 4, attributes: { a: '1' }, producedAt: 10 });
  for (const fmt of ['avro', 'auto'] as const) {
    const r = parseInput({ value: rec, headers: { 'vqguard-id': 'ignored' } }, fmt, { fallbackId: 'x' });
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(r.input, { id: 'r1', contentType: 'image/png', bytes: PNG_HEAD, label: 4, attributes: { a: '1' }, producedAt: 10, declaredWidth: 28, declaredHeight: 28, source: 'avro' });
  }
  const img = parseInput({ value: PNG_HEAD }, 'auto', { fallbackId: 'x' });
  assert.ok(img.ok);
  assert.equal(img.input.source, 'raw');
  const garbage = parseInput({ value: Buffer.from('plain text, not an image') }, 'auto', { fallbackId: 'x' });
  assert.equal(!garbage.ok && garbage.reason, 'bad_avro');

  const magic: [string, Buffer][] = [
    ['png', PNG_HEAD],
    ['jpeg', Buffer.from([0xff, 0xd8, 0xff, 0xe0])],
    ['gif', Buffer.from('GIF89a....')],
    ['webp', Buffer.concat([Buffer.from('RIFF'), Buffer.alloc(4), Buffer.from('WEBPVP8 ')])],
    ['tiff', Buffer.from([0x49, 0x49, 0x2a, 0x00, 8, 0, 0, 0])],
    ['tiff', Buffer.from([0x4d, 0x4d, 0x00, 0x2a, 0, 0, 0, 8])],
    ['svg', Buffer.from('\ufeff  <?xml version="1.0"?><svg/>')],
    ['svg', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>')],
  ];
  for (const [fmt, b] of magic) assert.equal(sniffImage(b), fmt, fmt);
  assert.equal(sniffImage(rec), null);
  assert.equal(sniffImage(Buffer.alloc(0)), null);
});

test('reason codes are unique and recognisable', () => {
  assert.equal(new Set(REASON_CODES).size, REASON_CODES.length);
  assert.ok(isReasonCode('bad_avro') && !isReasonCode('nope'));
});
