// Unit tests of the consumer's pure parts: OffsetTracker, Backpressure, the webhook's TokenBucket,
// message fitting (truncated dead letters, output_too_large), "message too large" detection,
// image sniffing (BMP/ICO -> unsupported_format before Avro) and the consumer timeouts config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { OffsetTracker, chunk } from '../src/consumer/offsets.ts';
import { Backpressure } from '../src/consumer/backpressure.ts';
import { TokenBucket } from '../src/ops/webhook.ts';
import { assemble, fitDeadLetter, messageBytes, type InMessage, type Outcome } from '../src/consumer/processChunk.ts';
import { isMessageTooLarge } from '../src/consumer/runner.ts';
import { decodeDeadLetter, decodeAlert } from '../src/records/avro.ts';
import { sniffImage, sniffUnsupportedImage } from '../src/image/sniff.ts';
import { parseInput } from '../src/records/input.ts';
import { ConfigError, parseConfig } from '../src/config/schema.ts';

test('OffsetTracker: next offset to commit only moves forward, per partition; forget', () => {
  const t = new OffsetTracker();
  assert.equal(t.committable('a', 0), undefined);
  assert.equal(t.acknowledge('a', 0, '9'), '10');
  assert.equal(t.acknowledge('a', 0, '4'), '10', 'an older acknowledgement does not move it back');
  assert.equal(t.acknowledge('a', 1, '0'), '1', 'partitions are independent');
  assert.equal(t.acknowledge('a', 0, '9007199254740993'), '9007199254740994', '64-bit offsets are exact');
  t.forget('a', 0);
  assert.equal(t.committable('a', 0), undefined);
  assert.equal(t.committable('a', 1), '1');
  assert.deepEqual(chunk([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
  assert.throws(() => chunk([1], 0));
});

test('Backpressure: pauses above max, resumes at half, counts the peak', () => {
  const b = new Backpressure(100);
  assert.equal(b.add(60), null);
  assert.equal(b.add(40), null, 'at the bound: not yet');
  assert.equal(b.add(1), 'pause');
  assert.equal(b.add(50), null, 'paused once');
  assert.equal(b.paused, true);
  assert.equal(b.maxSeen, 151);
  assert.equal(b.remove(100), null, '51 left: above half');
  assert.equal(b.remove(1), 'resume', '50 = half');
  assert.equal(b.remove(1), null);
  assert.equal(b.inFlight, 49);
  assert.equal(b.remove(1000), null);
  assert.equal(b.inFlight, 0, 'never negative');
  assert.throws(() => new Backpressure(0));
});

test('TokenBucket: burst, then the rate; refills with time, capped at the burst', () => {
  let now = 0;
  const b = new TokenBucket(2, 3, () => now);
  assert.deepEqual([b.take(), b.take(), b.take(), b.take()], [true, true, true, false], 'burst of 3');
  now += 499;
  assert.equal(b.take(), false, '0.998 token after 499 ms at 2/s');
  now += 1;
  assert.equal(b.take(), true, 'one token after 500 ms');
  now += 60_000;
  assert.deepEqual([b.take(), b.take(), b.take(), b.take()], [true, true, true, false], 'capped at the burst after a long idle');
});

const msg = (value: Buffer, offset = '7'): InMessage => ({ key: Buffer.from('k'), value, headers: { 'vqguard-id': 'r1', other: 'x' }, offset, timestamp: '1700000000000' });
const topics = { topic: 'in', partition: 2, output: 'out', deadLetter: 'dlq', alerts: 'alerts' };

test('fitDeadLetter: whole when it fits; else the first bytes + length + sha256, marked, within the limit', () => {
  const original = Buffer.alloc(50_000, 7);
  original.write('head', 0);
  const d = { id: 'r1', reason: 'bad_avro', detail: 'garbage', original, headers: { a: 'b' }, topic: 'in', partition: 0, offset: '3', at: 1 };
  const whole = fitDeadLetter(d, 100_000);
  assert.equal(whole.truncated, false);
  assert.equal(whole.msg?.headers?.['vqguard-truncated'], undefined);
  for (const limit of [40_000, 10_000, 1_000]) {
    const { msg: fitted, truncated } = fitDeadLetter(d, limit);
    assert.equal(truncated, true);
    const m = fitted!;
    assert.ok(m, `a dead letter fits ${limit}`);
    assert.ok(messageBytes(m) <= limit, `fits ${limit}: ${messageBytes(m)}`);
    assert.equal(m.headers?.['vqguard-truncated'], 'true');
    const r = decodeDeadLetter(m.value);
    assert.ok(r.ok);
    assert.equal(r.record.originalLength, 50_000);
    assert.equal(r.record.originalSha256, createHash('sha256').update(original).digest('hex'));
    assert.ok(r.record.original.length > 0 && original.subarray(0, r.record.original.length).equals(r.record.original), 'a prefix of the original');
    assert.ok(r.record.original.length > limit - 1_000, `uses the room (${r.record.original.length} of ${limit})`);
    assert.match(r.record.detail, /^garbage; original truncated to its first \d+ of 50000 bytes \(sha256 [0-9a-f]{64}\)/);
    assert.equal(r.record.reason, 'bad_avro');
  }
});

test('assemble: an output too large for its topic becomes an output_too_large dead letter; an alert loses its attributes', () => {
  const verdict = { flagged: true, score: 1, scores: { combined: 1 }, labelBefore: 1, labelAfter: 2, confidenceBefore: 0.9, confidenceAfter: 0.8, threshold: 0.5 } as never;
  const alert = { id: 'r1', topic: 'in', partition: 2, offset: '7', pipeline: 'full', score: 1, scores: { combined: 1 }, labelBefore: 1, labelAfter: 2, reason: 'x', attributes: { big: 'y'.repeat(5_000) }, at: 1 };
  const oc: Outcome = { kind: 'output', m: msg(Buffer.alloc(10)), id: 'r1', value: Buffer.alloc(20_000), headers: {}, alert, flagged: true, label: null, verdict };
  const fits = assemble([oc], topics, { maxBytes: () => 100_000 });
  assert.equal(fits.out.get('out')?.length, 1);
  assert.equal(fits.outputs.length, 1);
  const small = assemble([oc], topics, { maxBytes: (t) => (t === 'out' ? 10_000 : t === 'alerts' ? 2_000 : 100_000) });
  assert.equal(small.out.get('out'), undefined);
  assert.deepEqual(small.deadLetters.map((d) => d.reason), ['output_too_large']);
  const dl = decodeDeadLetter(small.out.get('dlq')![0]!.value);
  assert.ok(dl.ok && /does not fit topic out/.test(dl.record.detail));
  const a = decodeAlert(small.out.get('alerts')![0]!.value);
  assert.ok(a.ok);
  assert.deepEqual(Object.keys(a.record.attributes), ['vqguard-truncated'], 'attributes dropped from an alert that did not fit');
  assert.equal(small.alerts.length, 1, 'the alert is still sent');
});

test('isMessageTooLarge: kafkajs protocol errors, wrapped or by message', () => {
  assert.ok(isMessageTooLarge(Object.assign(new Error('x'), { type: 'MESSAGE_TOO_LARGE' })));
  assert.ok(isMessageTooLarge(Object.assign(new Error('outer'), { cause: Object.assign(new Error('inner'), { type: 'RECORD_LIST_TOO_LARGE' }) })));
  assert.ok(isMessageTooLarge(new Error('The request included a message larger than the max message size the server will accept')));
  assert.ok(isMessageTooLarge(Object.assign(new Error('retries exceeded'), { errors: [new Error('a'), Object.assign(new Error('b'), { type: 'MESSAGE_TOO_LARGE' })] })));
  assert.equal(isMessageTooLarge(new Error('The coordinator is not aware of this member')), false);
});

test('sniff: BMP and ICO are recognised as unsupported images; under format auto they are unsupported_format, not bad_avro', () => {
  const bmp = Buffer.alloc(70);
  bmp.write('BM', 0);
  bmp.writeUInt32LE(70, 2);
  bmp.writeUInt32LE(54, 10);
  bmp.writeUInt32LE(40, 14);
  const ico = Buffer.alloc(40);
  ico.writeUInt16LE(0, 0);
  ico.writeUInt16LE(1, 2);
  ico.writeUInt16LE(1, 4);
  ico[6] = 16;
  ico[7] = 16;
  assert.equal(sniffImage(bmp), null);
  assert.equal(sniffUnsupportedImage(bmp), 'BMP');
  assert.equal(sniffUnsupportedImage(ico), 'ICO');
  assert.equal(sniffUnsupportedImage(Buffer.from('BM but just some text, nothing more')), null);
  assert.equal(sniffUnsupportedImage(Buffer.from('qoif....')), 'QOI');
  for (const [name, b] of [['BMP', bmp], ['ICO', ico]] as const) {
    const r = parseInput({ value: b }, 'auto', { fallbackId: 'x' });
    assert.ok(!r.ok);
    assert.equal(r.reason, 'unsupported_format');
    assert.match(r.detail, new RegExp(`a ${name} image`));
  }
});

test('config: consumer timeouts have defaults and are validated against each other', () => {
  const base = { kafka: { brokers: ['b:9092'] }, topics: [{ input: 'in', output: 'out', deadLetter: 'dlq', pipeline: 'full' }] };
  const c = parseConfig(base);
  assert.deepEqual(
    { s: c.consumer.sessionTimeoutMs, h: c.consumer.heartbeatIntervalMs, r: c.consumer.rebalanceTimeoutMs, t: c.consumer.transactionTimeoutMs, p: c.consumer.poisonAttempts },
    { s: 10_000, h: 1_000, r: 30_000, t: 6_000, p: 3 },
  );
  const bad = (consumer: Record<string, unknown>) => {
    try {
      parseConfig({ ...base, consumer });
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      return e.problems.join('\n');
    }
    assert.fail('expected a ConfigError');
  };
  assert.match(bad({ heartbeatIntervalMs: 5000 }), /consumer\.heartbeatIntervalMs: must be at most a third of sessionTimeoutMs \(10000\)/);
  assert.match(bad({ sessionTimeoutMs: 40_000 }), /consumer\.rebalanceTimeoutMs: must be at least sessionTimeoutMs \(40000\)/);
  assert.match(bad({ transactionTimeoutMs: 10_000 }), /consumer\.transactionTimeoutMs: must be below sessionTimeoutMs/);
  assert.match(bad({ sessionTimeoutMs: 1000 }), /consumer\.sessionTimeoutMs/);
  assert.match(bad({ sessionTimout: 1000 }), /unknown key "sessionTimout" \(did you mean "sessionTimeoutMs"\?\)|unknown key "sessionTimout"/);
  assert.equal(parseConfig({ ...base, consumer: { sessionTimeoutMs: 45_000, rebalanceTimeoutMs: 60_000, heartbeatIntervalMs: 3_000, transactionTimeoutMs: 20_000 } }).consumer.sessionTimeoutMs, 45_000);
});
