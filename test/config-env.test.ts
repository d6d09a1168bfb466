// ${VAR} and ${VAR:default} references in the guard configuration (src/config/load.ts), and
// kafka.autoOffsetReset.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../src/config/load.ts';

const dir = mkdtempSync(join(tmpdir(), 'vqguard-config-env-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function write(text: string, ext = 'yaml'): string {
  const p = join(dir, `c${n++}.${ext}`);
  writeFileSync(p, text);
  return p;
}

const YAML_DOC = `
# a comment with \${NOT_EXPANDED} is left alone
kafka:
  brokers: ["\${BROKER:127.0.0.1:9092}"]
  groupId: guard-\${ENVIRONMENT}
  autoOffsetReset: \${OFFSET_RESET:earliest}
http:
  port: \${HTTP_PORT:9464}
transactions: \${EXACTLY_ONCE:false}
topics:
  - input: \${INPUT_TOPIC}
    pipeline: split2>full
    output: "\${INPUT_TOPIC}.clean"
    deadLetter: \${INPUT_TOPIC}.dlq
    maxBatchSize: \${BATCH:32}
`;

test('${VAR} and ${VAR:default} expand in values; unquoted whole references take the expanded type', () => {
  const p = write(YAML_DOC);
  const c = loadConfig(p, { env: { ENVIRONMENT: 'prod', INPUT_TOPIC: 'uploads', HTTP_PORT: '9100', EXACTLY_ONCE: 'true' } });
  assert.deepEqual(c.kafka.brokers, ['127.0.0.1:9092'], 'default used when unset');
  assert.equal(c.kafka.groupId, 'guard-prod', 'reference inside a string');
  assert.equal(c.kafka.autoOffsetReset, 'earliest');
  assert.equal(c.http.port, 9100, 'number from the environment');
  assert.equal(c.transactions, true, 'boolean from the environment');
  assert.equal(c.topics[0]!.maxBatchSize, 32, 'number from the default');
  assert.equal(c.topics[0]!.input, 'uploads');
  assert.equal(c.topics[0]!.output, 'uploads.clean');
  assert.equal(c.topics[0]!.deadLetter, 'uploads.dlq');

  const d = loadConfig(p, { env: { ENVIRONMENT: 'dev', INPUT_TOPIC: 'x', BROKER: 'kafka:9094', OFFSET_RESET: 'latest', HTTP_PORT: '' } });
  assert.deepEqual(d.kafka.brokers, ['kafka:9094'], 'the environment wins over the default');
  assert.equal(d.kafka.autoOffsetReset, 'latest');
  assert.equal(d.http.port, 9464, 'an empty variable takes the default');
});

test('every unset variable without a default is reported at once, by path; nothing else is guessed', () => {
  const p = write(YAML_DOC);
  assert.throws(
    () => loadConfig(p, { env: {} }),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.deepEqual(e.problems, [
        'kafka.groupId: environment variable ENVIRONMENT is not set (or write ${ENVIRONMENT:default})',
        'topics[0].input: environment variable INPUT_TOPIC is not set (or write ${INPUT_TOPIC:default})',
        'topics[0].output: environment variable INPUT_TOPIC is not set (or write ${INPUT_TOPIC:default})',
        'topics[0].deadLetter: environment variable INPUT_TOPIC is not set (or write ${INPUT_TOPIC:default})',
      ]);
      assert.match(e.message, /c\d+\.yaml/, 'names the file');
      return true;
    },
  );
});

test('an expanded value is still validated; quoted references stay strings; $${ is a literal', () => {
  const p = write(`kafka: { brokers: ["127.0.0.1:9092"] }
http: { port: "\${HTTP_PORT}" }
topics:
  - input: in
    pipeline: split2>full
    output: \${OUT}
    deadLetter: dlq
`);
  assert.throws(() => loadConfig(p, { env: { HTTP_PORT: '9100', OUT: 'bad topic!' } }), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.ok(e.problems.includes('http.port: expected number, got string'), e.problems.join('\n'));
    assert.ok(e.problems.some((x) => x.startsWith('topics[0].output: not a valid Kafka topic name')), e.problems.join('\n'));
    return true;
  });
  const lit = write(`kafka: { brokers: ["127.0.0.1:9092"], clientId: "guard-$\${HOME}" }
topics: [{ input: in, pipeline: split2>full, output: out, deadLetter: dlq }]
`);
  assert.equal(loadConfig(lit, { env: { HOME: '/root' } }).kafka.clientId, 'guard-${HOME}');
  const malformed = write(`kafka: { brokers: ["127.0.0.1:9092"] }
topics: [{ input: "\${1BAD}", pipeline: split2>full, output: out, deadLetter: dlq }]
`);
  assert.throws(() => loadConfig(malformed, { env: {} }), /topics\[0\]\.input: "\$\{1BAD\}" is not a valid reference/);
});

test('JSON: references expand inside strings (which stay strings)', () => {
  const p = write(JSON.stringify({ kafka: { brokers: ['${BROKER:127.0.0.1:9092}'], clientId: '${CLIENT}' }, topics: [{ input: 'in', pipeline: 'split2>full', output: 'out', deadLetter: 'dlq' }] }), 'json');
  const c = loadConfig(p, { env: { CLIENT: 'guard-7' } });
  assert.deepEqual(c.kafka.brokers, ['127.0.0.1:9092']);
  assert.equal(c.kafka.clientId, 'guard-7');
  assert.throws(() => loadConfig(p, { env: {} }), /kafka\.clientId: environment variable CLIENT is not set/);
});

test('kafka.autoOffsetReset: earliest by default, latest accepted, anything else rejected', () => {
  const base = (extra: string) => write(`kafka: { brokers: ["127.0.0.1:9092"]${extra} }
topics: [{ input: in, pipeline: split2>full, output: out, deadLetter: dlq }]
`);
  assert.equal(loadConfig(base(''), { env: {} }).kafka.autoOffsetReset, 'earliest');
  assert.equal(loadConfig(base(', autoOffsetReset: latest'), { env: {} }).kafka.autoOffsetReset, 'latest');
  assert.throws(() => loadConfig(base(', autoOffsetReset: smallest'), { env: {} }), /kafka\.autoOffsetReset: "smallest" is not one of "earliest", "latest"/);
});
