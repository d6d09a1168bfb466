// compose.yaml, checked statically: there is no Docker engine on the build machines, so
// `docker compose up` itself is not run here. scripts/composecheck.sh loads the file with compose-go
// (the loader Docker Compose uses: the Compose Specification schema, interpolation, references
// between services); this test then checks that the pieces fit: the guard's configuration loads
// with the guard's own loader, its models exist in the image, every topic it needs is created
// (the broker's auto-create is off), the producer writes to the guard's input, and the start-up
// order waits on health.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkModelBundles, loadConfig } from '../src/config/load.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
type Obj = Record<string, any>;
const dir = mkdtempSync(join(tmpdir(), 'vqguard-compose-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function composecheck(file: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('bash', ['scripts/composecheck.sh', file], { cwd: ROOT, encoding: 'utf8', timeout: 15 * 60 * 1000, maxBuffer: 16 * 1024 * 1024 });
  if (r.error) throw r.error;
  return r;
}

test('compose.yaml: valid for Docker Compose; broker, topics, guard image, sample producer fit together', { timeout: 900_000 }, () => {
  const r = composecheck('compose.yaml');
  assert.equal(r.status, 0, r.stderr);
  const p = JSON.parse(r.stdout) as Obj;
  const s = p.services as Obj;
  assert.deepEqual(Object.keys(s).sort(), ['guard', 'kafka', 'producer', 'topics']);

  // Broker: apache/kafka, pinned, KRaft, reachable as kafka:9092 inside the network, auto-create off.
  assert.match(s.kafka.image, /^apache\/kafka:\d+\.\d+\.\d+$/);
  const kenv = s.kafka.environment as Obj;
  assert.equal(kenv.KAFKA_PROCESS_ROLES, 'broker,controller');
  assert.match(kenv.KAFKA_ADVERTISED_LISTENERS, /PLAINTEXT:\/\/kafka:9092/);
  assert.equal(kenv.KAFKA_AUTO_CREATE_TOPICS_ENABLE, 'false');
  assert.ok(s.kafka.healthcheck?.test?.length, 'broker health check');

  // Guard: built from this repository's Dockerfile (cpu target), the image's entrypoint, its config
  // mounted where the image expects it, read-only root with /tmp writable (the image's contract).
  assert.equal(relative(ROOT, s.guard.build.context), '');
  assert.equal(s.guard.build.target, 'cpu');
  assert.match(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'), /^FROM \S+ AS cpu$/m);
  assert.deepEqual(s.guard.command, ['run', '--config', '/etc/vqguard/guard.yaml']);
  const mount = (s.guard.volumes as Obj[]).find((v) => v.target === '/etc/vqguard/guard.yaml');
  assert.ok(mount && mount.type === 'bind' && mount.read_only, 'guard.yaml bind-mounted read-only');
  assert.ok(existsSync(mount.source), `${mount.source} exists`);
  assert.equal(s.guard.read_only, true);
  assert.deepEqual(s.guard.tmpfs, ['/tmp']);
  assert.equal(s.guard.user, '10001:10001');

  // The mounted configuration loads with the guard's own loader, with the compose environment.
  const cfg = loadConfig(mount.source, { env: s.guard.environment });
  assert.deepEqual(cfg.kafka.brokers, ['kafka:9092']);
  assert.deepEqual(s.guard.ports.map((x: Obj) => Number(x.target)), [cfg.http.port], 'the guard\'s HTTP port is published');
  // Its models are baked into the image at /app/models (from models/ in the build context).
  const local = (p: string) => p.replace(/^\/app\/models/, join(ROOT, 'models'));
  const bundles = checkModelBundles({ ...cfg, topics: cfg.topics.map((t) => ({ ...t, models: local(t.models) })) }, ROOT);
  assert.deepEqual(bundles.problems, []);
  assert.match(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'), /^COPY models\/ \.\/models\/$/m);

  // Every topic the guard reads or writes is created before it starts.
  const created = new Set([...String(s.topics.command.join(' ')).matchAll(/([a-z.]+):\d+/g)].map((m) => m[1]!));
  for (const t of cfg.topics) {
    for (const name of [t.input!, t.output, t.deadLetter, t.alerts]) assert.ok(created.has(name), `topic ${name} created`);
  }
  assert.deepEqual(s.topics.depends_on, { kafka: { condition: 'service_healthy', required: true } });
  assert.deepEqual(s.guard.depends_on, { topics: { condition: 'service_completed_successfully', required: true } });

  // Producer: the same image, sample traffic into the guard's input, once the guard is healthy.
  assert.equal(s.producer.image, s.guard.image);
  assert.deepEqual(s.producer.depends_on, { guard: { condition: 'service_healthy', required: true } });
  const args = [...s.producer.entrypoint, ...s.producer.command] as string[];
  assert.equal(args[args.indexOf('--topic') + 1], cfg.topics[0]!.input);
  assert.equal(args[args.indexOf('--brokers') + 1], 'kafka:9092');
  assert.ok(existsSync(local(args[args.indexOf('--models') + 1]!)), 'producer models exist in the image');
  assert.match(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'), /HEALTHCHECK[\s\S]*?\/healthz/, 'the guard image has the health check the producer waits on');
});

test('composecheck rejects what Docker Compose would: an unknown key, a dependency on a missing service', { timeout: 300_000 }, () => {
  const text = readFileSync(join(ROOT, 'compose.yaml'), 'utf8');
  const cases: Array<[string, string, RegExp]> = [
    ['    healthcheck:\n', '    healtcheck:\n', /healtcheck/],
    ['      guard:\n        condition: service_healthy', '      guardd:\n        condition: service_healthy', /guardd/],
  ];
  for (const [from, to, re] of cases) {
    assert.ok(text.includes(from));
    const f = join(dir, 'compose.yaml');
    writeFileSync(f, text.replace(from, to).replaceAll('./deploy/compose/guard.yaml', join(ROOT, 'deploy/compose/guard.yaml')).replace('context: .', `context: ${ROOT}`));
    const r = composecheck(f);
    assert.equal(r.status, 1, `rejected: ${to.trim()}`);
    assert.match(r.stderr, re);
  }
});
