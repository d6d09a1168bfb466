import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, checkModelBundles, loadConfig, redactConfig, resolveSecrets } from '../src/config/load.ts';
import { parseConfig, type GuardConfig } from '../src/config/schema.ts';

const dir = mkdtempSync(join(tmpdir(), 'vqguard-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const base = { kafka: { brokers: ['127.0.0.1:9092'] }, topics: [{ input: 'images.raw', pipeline: 'split2>full', output: 'images.clean', deadLetter: 'images.dlq' }] };
const clone = <T>(x: T): T => structuredClone(x);

/** The problems of a config that must fail. */
function problems(raw: unknown, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(raw, { env });
  } catch (e) {
    assert.ok(e instanceof ConfigError, `ConfigError expected, got ${String(e)}`);
    return e.problems;
  }
  assert.fail('expected a ConfigError');
}

function hasProblem(list: string[], re: RegExp): void {
  assert.ok(list.some((p) => re.test(p)), `expected a problem matching ${re}, got:\n  ${list.join('\n  ')}`);
}

test('examples/guard.yaml loads with every default filled in', () => {
  const c = loadConfig('examples/guard.yaml', { env: {} });
  assert.deepEqual(c.kafka, { brokers: ['127.0.0.1:9092'], clientId: 'vqguard', groupId: 'vqguard', autoOffsetReset: 'earliest', checkTopics: true });
  assert.deepEqual(c.producer, { compression: 'none' });
  assert.equal(c.transactions, false);
  assert.deepEqual(c.http, { port: 9464, host: '0.0.0.0' });
  assert.equal(c.alerts.topic, 'vqguard.alerts');
  assert.equal(c.topics.length, 1);
  const t = c.topics[0]!;
  assert.deepEqual(
    [t.input, t.format, t.pipelines, t.models, t.action, t.output, t.deadLetter, t.deadLetterFormat, t.alerts, t.maxBatchSize, t.maxBatchWaitMs],
    ['images.raw', 'auto', ['split2>full'], 'models/mnist', 'forward-cleaned', 'images.clean', 'images.dlq', 'avro', 'vqguard.alerts', 64, 20],
  );
  assert.deepEqual(t.image, {
    maxBytes: 1048576, maxPixels: 4194304, formats: ['png', 'jpeg', 'webp', 'gif', 'tiff'], colour: 'grey', width: 28, height: 28,
    resize: 'reject', colourMismatch: 'reject', alpha: 'flatten', animated: 'first-frame', highBitDepth: 'convert', cmyk: 'convert', outputFormat: 'png',
  });
});

test('a minimal config gets the same defaults; JSON works; brokers from KAFKA_BROKERS', () => {
  const path = join(dir, 'min.json');
  const raw = clone(base) as { kafka: { brokers?: string[] } };
  delete raw.kafka.brokers;
  writeFileSync(path, JSON.stringify(raw));
  const c = loadConfig(path, { env: { KAFKA_BROKERS: 'k1:9092, k2:9093' } });
  assert.deepEqual(c.kafka.brokers, ['k1:9092', 'k2:9093']);
  assert.equal(c.topics[0]!.image.width, 28);
  hasProblem(problems(raw), /^kafka\.brokers: required/);
});

test('unknown keys are errors, with the path and a suggestion', () => {
  const raw = clone(base) as Record<string, unknown> & { topics: Record<string, unknown>[] };
  raw.topics.push({ input: 'other', pipeline: 'full', ouput: 'x', deadLetter: 'y', image: { widht: 28 } });
  raw.htpp = {};
  const list = problems(raw);
  hasProblem(list, /^topics\[1\]: unknown key "ouput" \(did you mean "output"\?\)$/);
  hasProblem(list, /^topics\[1\]\.output: required$/);
  hasProblem(list, /^topics\[1\]\.image: unknown key "widht" \(did you mean "width"\?\)$/);
  hasProblem(list, /^\(top level\): unknown key "htpp"/);
});

test('missing or empty topics', () => {
  hasProblem(problems({ kafka: base.kafka }), /^topics: required/);
  hasProblem(problems({ kafka: base.kafka, topics: [] }), /^topics: at least one topic/);
});

test('pipelines are parsed: an unknown stage is named with its path', () => {
  const raw = clone(base) as { topics: Record<string, unknown>[] };
  raw.topics[0]!.pipeline = 'spilt2>full';
  hasProblem(problems(raw), /^topics\[0\]\.pipeline: unknown pipeline stage "spilt2"/);
  raw.topics[0]!.pipeline = ['adv:split2>full', 'clean:fulll'];
  hasProblem(problems(raw), /^topics\[0\]\.pipeline\[1\]: unknown pipeline stage "fulll"/);
  raw.topics[0]!.pipeline = ['adv:split2>full', 'full'];
  assert.deepEqual(parseConfig(raw, { env: {} }).topics[0]!.pipelines, ['adv:split2>full', 'full']);
});

test('every stage the README names validates in a config (the stage registry), bad options are named', () => {
  const raw = clone(base) as { topics: Record<string, unknown>[] };
  const readme = readFileSync('README.md', 'utf8');
  const named = ['full', 'split2', 'split2>full', 'full>split2', 'adv:split2>full', 'bits1', 'median2', 'defensegan', 'defensegan-L100-R5'];
  for (const p of named.slice(0, 7)) assert.ok(readme.includes(`\`${p}\``), `README names ${p}`);
  raw.topics[0]!.pipeline = named;
  assert.deepEqual(parseConfig(raw, { env: {} }).topics[0]!.pipelines, named);
  raw.topics[0]!.pipeline = ['bits0', 'median9'];
  const list = problems(raw);
  hasProblem(list, /^topics\[0\]\.pipeline\[0\]: pipeline stage "bits0": n .*greater than or equal to 1 \(expected bits<n> \(n = 1\.\.8\)\)/);
  hasProblem(list, /^topics\[0\]\.pipeline\[1\]: pipeline stage "median9": k .*less than or equal to 5/);
});

test('cross-topic checks: duplicate input, loops, one of input/inputPattern, limits', () => {
  const raw = clone(base) as { topics: Record<string, unknown>[] };
  raw.topics.push({ input: 'images.raw', pipeline: 'full', output: 'images.raw', deadLetter: 'd2' });
  raw.topics.push({ inputPattern: '^images\\..*$', pipeline: 'full', output: 'images.clean2', deadLetter: 'dlq3' });
  raw.topics.push({ pipeline: 'full', output: 'o4', deadLetter: 'd4', maxBatchSize: 0 });
  const list = problems(raw);
  hasProblem(list, /^topics\[1\]\.input: same input "images.raw" as topics\[0\]/);
  hasProblem(list, /^topics\[1\]\.output: .*is the input topic/);
  hasProblem(list, /^topics\[2\]\.output: .*matches inputPattern/);
  hasProblem(list, /^topics\[3\]: give exactly one of input and inputPattern/);
  hasProblem(list, /^topics\[3\]\.maxBatchSize: /);
});

test('SASL: exactly one password source', () => {
  const raw = clone(base) as { kafka: Record<string, unknown> };
  raw.kafka.sasl = { mechanism: 'scram-sha-512', username: 'u', password: 'p', passwordEnv: 'PW' };
  hasProblem(problems(raw), /^kafka\.sasl: give exactly one of password, passwordFile, passwordEnv \(got password and passwordEnv\)/);
  raw.kafka.sasl = { mechanism: 'scram-sha-512', username: 'u' };
  hasProblem(problems(raw), /^kafka\.sasl: give exactly one .*got none/);
  raw.kafka.sasl = { mechanism: 'md5', username: 'u', passwordEnv: 'PW' };
  hasProblem(problems(raw), /^kafka\.sasl\.mechanism: "md5" is not one of/);
});

test('resolveSecrets reads passwordFile / passwordEnv; redactConfig hides secrets', () => {
  const pw = join(dir, 'pw.txt');
  writeFileSync(pw, 's3cret-from-file\n');
  const raw = clone(base) as { kafka: Record<string, unknown> };
  raw.kafka.sasl = { mechanism: 'scram-sha-256', username: 'u', passwordFile: pw };
  assert.equal(resolveSecrets(parseConfig(raw, { env: {} })).sasl?.password, 's3cret-from-file');
  raw.kafka.sasl = { mechanism: 'plain', username: 'u', passwordEnv: 'VQ_PW' };
  const c = parseConfig(raw, { env: {} });
  assert.equal(resolveSecrets(c, { env: { VQ_PW: 'from-env' } }).sasl?.password, 'from-env');
  assert.throws(() => resolveSecrets(c, { env: {} }), /passwordEnv: environment variable VQ_PW is not set/);

  raw.kafka.sasl = { mechanism: 'plain', username: 'u', password: 'inline-secret' };
  (raw as unknown as GuardConfig).alerts = { topic: 'vqguard.alerts', webhook: { url: 'https://hooks.example.com/services/T000/B000/XXXX?token=abc' } } as GuardConfig['alerts'];
  const inline = parseConfig(raw, { env: {} });
  const red = redactConfig(inline);
  const text = JSON.stringify(red);
  assert.ok(!text.includes('inline-secret') && !text.includes('XXXX') && !text.includes('abc'), text);
  assert.equal(red.kafka.sasl?.password, '[redacted]');
  assert.equal(red.alerts.webhook?.url, 'https://hooks.example.com/[redacted]');
  assert.equal(inline.kafka.sasl?.password, 'inline-secret'); // original untouched
});

test('checkModelBundles names the missing bundle', () => {
  const models = join(dir, 'models', 'set');
  for (const b of ['classifier', 'purifier-split1', 'purifier-split2']) {
    mkdirSync(join(models, b), { recursive: true });
    // The check reads only model.json (schema-checked), not the weights: copy the shipped manifests.
    writeFileSync(join(models, b, 'model.json'), readFileSync(join('models', 'mnist', b, 'model.json')));
  }
  const raw = clone(base) as { models?: string; topics: Record<string, unknown>[] };
  raw.models = 'models/set';
  const good = checkModelBundles(parseConfig(raw, { env: {} }), dir);
  assert.ok(good.ok, good.problems.join('\n'));
  assert.equal(good.bundles.length, 3);

  raw.topics[0]!.pipeline = 'adv:split2>full';
  const bad = checkModelBundles(parseConfig(raw, { env: {} }), dir);
  assert.equal(bad.ok, false);
  assert.equal(bad.problems.length, 2);
  hasProblem(bad.problems, /^topics\[0\]\.pipeline "adv:split2>full" needs purifier-split2-adv: model bundle not found/);
  hasProblem(bad.problems, /needs purifier-split1-adv/);

  raw.topics[0]!.pipeline = 'split2>full';
  writeFileSync(join(models, 'purifier-split1', 'model.json'), JSON.stringify({ format: 'vqguard-bundle/1', name: 'purifier-split1' }));
  hasProblem(checkModelBundles(parseConfig(raw, { env: {} }), dir).problems, /needs purifier-split1: model bundle .*model\.json is malformed \(config: /);

  raw.models = 'models/none';
  hasProblem(checkModelBundles(parseConfig(raw, { env: {} }), dir).problems, /^topics\[0\]\.models: model directory .* does not exist/);
});

test('checkModelBundles: a model set from `vqguard fit` guards an external classifier (modelset.json + declaration), no classifier bundle needed', () => {
  const models = join(dir, 'models', 'fitted');
  for (const b of ['purifier-split1', 'purifier-split2']) {
    mkdirSync(join(models, b), { recursive: true });
    writeFileSync(join(models, b, 'model.json'), readFileSync(join('models', 'mnist', b, 'model.json')));
  }
  const decl = join(process.cwd(), 'test/fixtures/external/fashion/onnx.yaml');
  const set = { format: 'vqguard-modelset/1', classifier: decl, classes: ['a', 'b'], surrogate: null, dataset: 'folder:x', height: 28, width: 28, channels: 1 };
  writeFileSync(join(models, 'modelset.json'), JSON.stringify(set));
  const raw = clone(base) as { models?: string };
  raw.models = 'models/fitted';
  const good = checkModelBundles(parseConfig(raw, { env: {} }), dir);
  assert.ok(good.ok, good.problems.join('\n'));
  assert.equal(good.bundles.length, 2);
  // The declaration or the model it names missing, or a broken modelset.json: each is named.
  writeFileSync(join(models, 'modelset.json'), JSON.stringify({ ...set, classifier: 'absent.yaml' }));
  hasProblem(checkModelBundles(parseConfig(raw, { env: {} }), dir).problems, /^topics\[0\]: classifier declaration .*absent\.yaml \(named in .*modelset\.json\) does not exist/);
  writeFileSync(join(models, 'decl.yaml'), readFileSync(decl, 'utf8').replace('path: model.onnx', 'path: gone.onnx'));
  writeFileSync(join(models, 'modelset.json'), JSON.stringify({ ...set, classifier: 'decl.yaml' }));
  hasProblem(checkModelBundles(parseConfig(raw, { env: {} }), dir).problems, /^topics\[0\]: classifier onnx model .*gone\.onnx \(declared in .*decl\.yaml\) does not exist/);
  writeFileSync(join(models, 'modelset.json'), JSON.stringify({ ...set, channels: 2 }));
  hasProblem(checkModelBundles(parseConfig(raw, { env: {} }), dir).problems, /^topics\[0\]: .*modelset\.json: channels/);
});

test('file errors: unreadable file, bad YAML, duplicate keys', () => {
  assert.throws(() => loadConfig(join(dir, 'absent.yaml')), /cannot read .*ENOENT/);
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'kafka: [unclosed\n');
  assert.throws(() => loadConfig(bad), (e: unknown) => e instanceof ConfigError && /bad\.yaml/.test(e.message) && /YAML/.test(e.message));
  writeFileSync(bad, 'transactions: false\ntransactions: true\n');
  assert.throws(() => loadConfig(bad), /YAML: .*[Mm]ap keys must be unique/);
  writeFileSync(bad, '');
  assert.throws(() => loadConfig(bad), /the configuration is empty/);
});

test('Kafka settings (issue 18): fetch sizes, compression, checkTopics, deadLetter formats; each validated', () => {
  const raw = clone(base) as Record<string, unknown> & { topics: Record<string, unknown>[] };
  raw.consumer = { maxBytesPerPartition: 2_097_152, maxBytes: 20_971_520, minBytes: 1024, maxWaitTimeMs: 200 };
  raw.producer = { compression: 'lz4' };
  raw.kafka = { brokers: ['127.0.0.1:9092'], checkTopics: false };
  raw.topics[0]!.deadLetter = { topic: 'images.dlq', format: 'connect' };
  const c = parseConfig(raw, { env: {} });
  assert.deepEqual([c.consumer.maxBytesPerPartition, c.consumer.maxBytes, c.consumer.minBytes, c.consumer.maxWaitTimeMs], [2_097_152, 20_971_520, 1024, 200]);
  assert.deepEqual([c.producer.compression, c.kafka.checkTopics], ['lz4', false]);
  assert.deepEqual([c.topics[0]!.deadLetter, c.topics[0]!.deadLetterFormat], ['images.dlq', 'connect']);
  const d = parseConfig(base, { env: {} });
  assert.deepEqual([d.consumer.maxBytesPerPartition, d.consumer.maxBytes, d.consumer.minBytes, d.consumer.maxWaitTimeMs], [1_048_576, 10_485_760, 1, undefined]);

  const bad = clone(base) as Record<string, unknown> & { topics: Record<string, unknown>[] };
  bad.consumer = { maxBytesPerPartition: 4_000_000, maxBytes: 2_000_000, minBytes: 0, maxWaitTimeMs: 5000 };
  bad.producer = { compression: 'brotli' };
  bad.kafka = { brokers: ['127.0.0.1:9092'], checkTopics: 'yes' };
  bad.topics[0]!.deadLetter = { topic: 'images.dlq', format: 'json' };
  bad.topics.push({ input: 'other', pipeline: 'full', output: 'o2', deadLetter: { topic: 'o2' } });
  const list = problems(bad);
  hasProblem(list, /^consumer\.maxBytesPerPartition: must be at most maxBytes \(2000000\)/);
  hasProblem(list, /^consumer\.minBytes: /);
  hasProblem(list, /^consumer\.maxWaitTimeMs: must be at most a third of sessionTimeoutMs/);
  hasProblem(list, /^producer\.compression: "brotli" is not one of "none", "gzip", "snappy", "lz4", "zstd"/);
  hasProblem(list, /^kafka\.checkTopics: expected boolean, got string/);
  hasProblem(list, /^topics\[0\]\.deadLetter: expected a topic name, or \{ topic, format: avro \| connect \}/);
  hasProblem(list, /^topics\[1\]\.deadLetter: must differ from output/);
});

test('workers: auto by default, a thread count 0..256, nothing else; auto is cores - 1 from 4 cores, else 0', async () => {
  const { resolveWorkers } = await import('../src/consumer/imagePool.ts');
  assert.equal(parseConfig(clone(base)).workers, 'auto');
  assert.equal(loadConfig('examples/guard.yaml', { env: {} }).workers, 'auto');
  assert.equal(parseConfig({ ...clone(base), workers: 0 }).workers, 0);
  assert.equal(parseConfig({ ...clone(base), workers: 3 }).workers, 3);
  hasProblem(problems({ ...clone(base), workers: -1 }), /^workers/);
  hasProblem(problems({ ...clone(base), workers: 257 }), /^workers/);
  hasProblem(problems({ ...clone(base), workers: 1.5 }), /^workers/);
  hasProblem(problems({ ...clone(base), workers: 'all' }), /^workers/);
  const path = join(dir, 'workers.yaml');
  writeFileSync(path, 'kafka: {brokers: ["k:9092"]}\nworkers: ${VQ_WORKERS:auto}\ntopics: [{input: a, pipeline: full, output: b, deadLetter: c}]\n');
  assert.equal(loadConfig(path, { env: { VQ_WORKERS: '2' } }).workers, 2);
  assert.equal(loadConfig(path, { env: {} }).workers, 'auto');
  assert.deepEqual([1, 2, 3, 4, 16].map((n) => resolveWorkers('auto', n)), [0, 0, 0, 3, 15]);
  assert.equal(resolveWorkers(0, 16), 0);
  assert.equal(resolveWorkers(5, 2), 5);
});
