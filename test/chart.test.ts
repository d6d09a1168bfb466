// The chart's modes and monitoring (deploy/helm/vqguard), beyond test/helm.test.ts:
//   - values.schema.json is generated from the guard's zod schema and is current; it accepts every
//     documented key (inputPattern) and rejects typos (replicas, pipline, ouput);
//   - every mode (standalone, statefulset, sidecar) lints with --strict, renders a guard.yaml the
//     guard's own validator accepts, and renders manifests that pass scripts/kubecheck.sh (strict
//     decoding into the Kubernetes types; CRDs' schemas for KEDA and prometheus-operator objects);
//   - statefulset mode: stable VQGUARD_TRANSACTIONAL_ID per pod; exactly-once refused on a Deployment;
//   - sidecar mode: readiness coupling off by default, port settable;
//   - KEDA follows the guard's kafka.autoOffsetReset;
//   - PrometheusRule (promtool check rules when promtool is available, see scripts/promtool.sh) and
//     the Grafana dashboard name only metrics and labels the guard exports.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { parseConfig } from '../src/config/schema.ts';
import { loadConfig } from '../src/config/load.ts';
import { GuardMetrics } from '../src/ops/metrics.ts';
import { renderSchema, SCHEMA_PATH } from '../scripts/chart-schema.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CHART = 'deploy/helm/vqguard';
const CI = join(CHART, 'ci');
const NS = 'guards';
type Obj = Record<string, any>;

const dir = mkdtempSync(join(tmpdir(), 'vqguard-chart-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function run(cmd: string, args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', input, maxBuffer: 64 * 1024 * 1024, timeout: 30 * 60 * 1000 });
  if (r.error) throw r.error;
  return r;
}

function helm(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return run('bash', ['scripts/helm.sh', ...args]);
}

function renderText(files: string[] = [], set: string[] = []): string {
  const r = helm(['template', 'vq', CHART, '--namespace', NS, ...files.flatMap((f) => ['-f', f]), ...set.flatMap((s) => ['--set', s])]);
  assert.equal(r.status, 0, `helm template failed:\n${r.stderr}`);
  return r.stdout;
}

function render(files: string[] = [], set: string[] = []): Obj[] {
  return parseAllDocuments(renderText(files, set))
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
}

function renderFails(files: string[], set: string[], re: RegExp): void {
  const r = helm(['template', 'vq', CHART, '--namespace', NS, ...files.flatMap((f) => ['-f', f]), ...set.flatMap((s) => ['--set', s])]);
  assert.notEqual(r.status, 0, `helm template should fail (${[...files, ...set].join(' ')})`);
  assert.match(r.stderr, re);
}

function values(name: string, v: unknown): string {
  const p = join(dir, `${name}.yaml`);
  writeFileSync(p, stringify(v));
  return p;
}

const ofKind = (objs: Obj[], kind: string) => objs.filter((o) => o.kind === kind);
function one(objs: Obj[], kind: string, name?: string): Obj {
  const found = ofKind(objs, kind).filter((o) => name === undefined || o.metadata.name === name);
  assert.equal(found.length, 1, `exactly one ${kind}${name ? ` ${name}` : ''} (got ${found.length})`);
  return found[0]!;
}
const guardYaml = (objs: Obj[]): Obj => parse(one(objs, 'ConfigMap', 'vq-vqguard').data['guard.yaml']) as Obj;
const podSpec = (objs: Obj[], kind: string): Obj => one(objs, kind).spec.template.spec;
const guardContainer = (spec: Obj): Obj => (spec.containers as Obj[]).find((c) => c.name === 'vqguard')!;

/** Every optional object on, per mode. */
const MODES: Array<[string, string[], string[]]> = [
  ['standalone', [join(CI, 'everything-enabled-values.yaml')], ['prometheusRule.enabled=true', 'grafanaDashboard.enabled=true']],
  ['statefulset', [join(CI, 'statefulset-values.yaml')], []],
  ['sidecar', [join(CI, 'sidecar-values.yaml')], ['serviceMonitor.enabled=true', 'prometheusRule.enabled=true', 'grafanaDashboard.enabled=true', 'sidecar.readinessProbe.enabled=true']],
];

before(() => {
  const r = helm(['version', '--short']);
  assert.equal(r.status, 0, r.stderr);
});

describe('values.schema.json', { timeout: 300_000 }, () => {
  test('is generated from the guard\'s zod schema and is current (regenerate: node --import tsx scripts/chart-schema.ts)', () => {
    assert.equal(readFileSync(SCHEMA_PATH, 'utf8'), renderSchema());
  });

  test('additionalProperties: false on every object the chart or the guard defines', () => {
    const schema = JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as Obj;
    // Open on purpose: Kubernetes objects passed through verbatim (checked by kubecheck on the
    // rendered manifests), string maps, `global`, and the per-score thresholds record.
    const open: string[] = [];
    const walk = (s: Obj, path: string) => {
      if (s.type === 'object' || s.properties) {
        if (s.properties) {
          assert.equal(s.additionalProperties, false, `${path || '(root)'}: additionalProperties false`);
          for (const [k, v] of Object.entries(s.properties as Obj)) walk(v as Obj, `${path}.${k}`);
        } else open.push(path);
      }
      if (s.items) walk(s.items as Obj, `${path}[]`);
      for (const alt of [...(s.anyOf ?? []), ...(s.oneOf ?? [])] as Obj[]) walk(alt, path);
    };
    walk(schema, '');
    assert.deepEqual(open.sort(), [
      '.affinity', '.config.topics[].thresholds', '.extraEnv[]', '.extraVolumeMounts[]', '.extraVolumes[]', '.global', '.gpu.nodeSelector',
      '.gpu.tolerations[]', '.grafanaDashboard.annotations', '.grafanaDashboard.labels', '.imagePullSecrets[]', '.nodeSelector', '.podAnnotations',
      '.podLabels', '.podSecurityContext', '.prometheusRule.labels', '.resources', '.securityContext', '.service.annotations',
      '.serviceMonitor.labels', '.sidecar.podSelector', '.tolerations[]', '.topologySpreadConstraints[]',
    ]);
  });

  test('documented inputPattern and autoOffsetReset accepted; replicas, pipline, ouput rejected by name', () => {
    const topic = { pipeline: 'split2>full', output: 'images.clean', deadLetter: 'images.dlq' };
    const ok = values('pattern', { config: { kafka: { brokers: ['kafka:9092'], autoOffsetReset: 'latest' }, topics: [{ inputPattern: '^images\\.raw\\..+$', ...topic }] } });
    assert.equal(guardYaml(render([ok])).topics[0].inputPattern, '^images\\.raw\\..+$');

    renderFails([], ['replicas=3'], /additional properties 'replicas' not allowed/);
    renderFails([values('pipline', { config: { topics: [{ input: 'a', pipline: 'split2>full', output: 'b', deadLetter: 'c' }] } })], [], /additional properties 'pipline' not allowed/);
    renderFails([values('ouput', { config: { topics: [{ input: 'a', pipeline: 'split2>full', ouput: 'b', deadLetter: 'c' }] } })], [], /additional properties 'ouput' not allowed/);
    renderFails([], ['config.kafka.autoOffsetReset=smallest'], /autoOffsetReset/);
    renderFails([], ['keda.lagThreshhold=5'], /additional properties 'lagThreshhold' not allowed/);
  });

  test('${VAR} references (expanded by the guard) are accepted where a value is typed or constrained; keys stay closed', () => {
    // (--set on a list index replaces the whole list: topics go through a values file.)
    const topic = (output: string) => values(`ref-${output.length}`, { config: { topics: [{ input: 'images.raw', pipeline: 'split2>full', output, deadLetter: 'images.dlq' }] } });
    const cfg = guardYaml(render([topic('${OUT_TOPIC:images.clean}')], ['config.kafka.brokers[0]=${KAFKA_BOOTSTRAP}', 'config.maxInFlight=${MAX_IN_FLIGHT:64}']));
    assert.deepEqual(cfg.kafka.brokers, ['${KAFKA_BOOTSTRAP}']);
    assert.equal(cfg.topics[0].output, '${OUT_TOPIC:images.clean}');
    assert.equal(cfg.maxInFlight, '${MAX_IN_FLIGHT:64}');
    // The guard expands the rendered guard.yaml at start-up: unquoted, so the number stays a number.
    const text = one(render([topic('${OUT_TOPIC:images.clean}')], ['config.kafka.brokers[0]=${KAFKA_BOOTSTRAP}', 'config.maxInFlight=${MAX_IN_FLIGHT:64}']), 'ConfigMap', 'vq-vqguard').data['guard.yaml'] as string;
    const file = join(dir, 'rendered-guard.yaml');
    writeFileSync(file, text);
    const loaded = loadConfig(file, { env: { KAFKA_BOOTSTRAP: 'kafka-0.kafka:9092', MAX_IN_FLIGHT: '32' } });
    assert.deepEqual([loaded.kafka.brokers, loaded.maxInFlight, loaded.topics[0]!.output], [['kafka-0.kafka:9092'], 32, 'images.clean']);
    renderFails([], ['config.maxInFlight=${1NOPE}'], /maxInFlight/);
    renderFails([topic('bad topic!')], [], /output/);
    // The chart itself needs these as literals.
    renderFails([], ['config.http.port=${PORT}'], /config\.http\.port must be a number in the chart/);
    renderFails([], ['config.transactions=${EXACTLY_ONCE:false}'], /config\.transactions must be true or false in the chart/);
    renderFails([], ['keda.enabled=true', 'config.kafka.autoOffsetReset=${RESET:latest}'], /config\.kafka\.autoOffsetReset must be earliest or latest in the chart/);
  });
});

describe('every mode: lint --strict, a guard.yaml the guard accepts, manifests valid for Kubernetes', { timeout: 900_000 }, () => {
  for (const [mode, files, set] of MODES) {
    test(mode, () => {
      const lint = helm(['lint', '--strict', CHART, ...files.flatMap((f) => ['-f', f]), ...set.flatMap((s) => ['--set', s])]);
      assert.equal(lint.status, 0, `helm lint --strict (${mode}):\n${lint.stdout}\n${lint.stderr}`);
      const text = renderText(files, set);
      const objs = parseAllDocuments(text).map((d) => d.toJS() as Obj | null).filter((o): o is Obj => o !== null);
      const cfg = parseConfig(guardYaml(objs), { env: {} });
      assert.ok(cfg.topics.length >= 1);
      const check = run('bash', ['scripts/kubecheck.sh'], text);
      assert.equal(check.status, 0, `kubecheck (${mode}):\n${check.stdout}\n${check.stderr}`);
      const checked = check.stdout.trim().split('\n');
      assert.equal(checked.length, objs.length, 'one verdict per object');
      assert.ok(checked.every((l) => l.startsWith('ok ')), check.stdout);
      for (const kind of ['PrometheusRule', 'ServiceMonitor', ...(mode === 'sidecar' ? [] : ['ScaledObject'])]) {
        assert.ok(checked.some((l) => l.includes(` ${kind}/`)), `${kind} checked against its CRD`);
      }
    });
  }

  test('kubecheck rejects what the API server would: an unknown field, a wrong type, a CRD typo', () => {
    const text = renderText(...(MODES[0]!.slice(1) as [string[], string[]]));
    const cases: Array<[string, string, RegExp]> = [
      ['revisionHistoryLimit: 5', 'revisionHistoryLimt: 5', /Deployment\/vq-vqguard: strict decoding error: unknown field "spec.revisionHistoryLimt"/],
      ['terminationGracePeriodSeconds: 40', 'terminationGracePeriodSeconds: "40"', /Deployment\/vq-vqguard: .*terminationGracePeriodSeconds/],
      ['pollingInterval: 15', 'pollingIntervall: 15', /ScaledObject\/vq-vqguard: unknown field "spec.pollingIntervall"/],
      ['scrapeTimeout: 10s', 'scrapeTimeout: 10 seconds', /ServiceMonitor\/vq-vqguard: .*scrapeTimeout/],
    ];
    for (const [from, to, re] of cases) {
      assert.ok(text.includes(from), `rendered text has ${from}`);
      const r = run('bash', ['scripts/kubecheck.sh'], text.replace(from, to));
      assert.equal(r.status, 1, `kubecheck fails on ${to}`);
      assert.match(r.stdout, re);
    }
  });
});

describe('statefulset mode: exactly-once deployable', { timeout: 300_000 }, () => {
  test('StatefulSet with a headless Service; each pod\'s VQGUARD_TRANSACTIONAL_ID comes from its name', () => {
    const objs = render([join(CI, 'statefulset-values.yaml')]);
    assert.equal(ofKind(objs, 'Deployment').length, 0);
    const sts = one(objs, 'StatefulSet');
    assert.equal(sts.spec.serviceName, 'vq-vqguard-pods');
    assert.equal(sts.spec.podManagementPolicy, 'Parallel');
    const headless = one(objs, 'Service', 'vq-vqguard-pods');
    assert.equal(headless.spec.clusterIP, 'None');
    assert.deepEqual(headless.spec.selector, sts.spec.selector.matchLabels);
    const env = guardContainer(sts.spec.template.spec).env as Obj[];
    const names = env.map((e) => e.name);
    const tid = env.find((e) => e.name === 'VQGUARD_TRANSACTIONAL_ID');
    assert.equal(tid?.value, 'images-guard-guards-$(POD_NAME)', '<groupId>-<namespace>-<pod name>');
    assert.ok(names.indexOf('POD_NAME') < names.indexOf('VQGUARD_TRANSACTIONAL_ID'), 'POD_NAME defined first, so $(POD_NAME) expands');
    assert.equal(env.find((e) => e.name === 'POD_NAME')?.valueFrom?.fieldRef?.fieldPath, 'metadata.name');
    assert.equal(guardYaml(objs).transactions, true);
    const so = one(objs, 'ScaledObject');
    assert.deepEqual(so.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'vq-vqguard' });

    const custom = render([join(CI, 'statefulset-values.yaml')], ['statefulset.transactionalIdPrefix=prod-eu-']);
    assert.equal((guardContainer(podSpec(custom, 'StatefulSet')).env as Obj[]).find((e) => e.name === 'VQGUARD_TRANSACTIONAL_ID')?.value, 'prod-eu-$(POD_NAME)');
  });

  // That the guard's transactions then use this id: test/transactional-id.test.ts (real broker).

  test('a Deployment never gets a transactional id; exactly-once on a Deployment is refused', () => {
    const dep = render();
    assert.ok(!(guardContainer(podSpec(dep, 'Deployment')).env as Obj[]).some((e) => e.name === 'VQGUARD_TRANSACTIONAL_ID'));
    renderFails([], ['config.transactions=true'], /config\.transactions \(exactly-once\) needs a stable transactional id per pod: use mode: statefulset/);
  });
});

describe('sidecar mode', { timeout: 300_000 }, () => {
  const snippet = (objs: Obj[]): Obj => (parse(one(objs, 'ConfigMap', 'vq-vqguard-sidecar').data['container.yaml']) as Obj[])[0]!;

  test('by default the parent pod\'s readiness does not depend on the broker; liveness and startup stay', () => {
    const c = snippet(render([join(CI, 'sidecar-values.yaml')]));
    assert.equal(c.readinessProbe, undefined);
    assert.equal(c.livenessProbe.httpGet.path, '/healthz');
    assert.equal(c.startupProbe.httpGet.path, '/healthz');
    const coupled = snippet(render([join(CI, 'sidecar-values.yaml')], ['sidecar.readinessProbe.enabled=true']));
    assert.equal(coupled.readinessProbe.httpGet.path, '/readyz');
    // Standalone always has it (a guard pod without partitions must not count as ready).
    assert.equal(guardContainer(podSpec(render(), 'Deployment')).readinessProbe.httpGet.path, '/readyz');
  });

  test('the port is settable (config.http.port): container port, probes, env, guard.yaml, Service', () => {
    const objs = render([join(CI, 'sidecar-values.yaml')], ['config.http.port=9465']);
    const c = snippet(objs);
    assert.deepEqual(c.ports, [{ name: 'vqguard-http', containerPort: 9465, protocol: 'TCP' }]);
    assert.equal(c.livenessProbe.httpGet.port, 'vqguard-http');
    assert.equal(c.env.find((e: Obj) => e.name === 'VQGUARD_HEALTH_PORT').value, '9465');
    assert.equal(guardYaml(objs).http.port, 9465);
    assert.equal(one(objs, 'Service').spec.ports[0].targetPort, 'vqguard-http');
  });
});

describe('KEDA follows the guard\'s autoOffsetReset', { timeout: 300_000 }, () => {
  const policy = (objs: Obj[]) => one(objs, 'ScaledObject').spec.triggers[0].metadata.offsetResetPolicy;
  test('earliest by default, latest when the guard starts at latest; a disagreeing value is refused', () => {
    assert.equal(policy(render([], ['keda.enabled=true'])), 'earliest');
    const latest = render([], ['keda.enabled=true', 'config.kafka.autoOffsetReset=latest']);
    assert.equal(policy(latest), 'latest');
    assert.equal(guardYaml(latest).kafka.autoOffsetReset, 'latest');
    assert.equal(policy(render([], ['keda.enabled=true', 'keda.offsetResetPolicy=earliest'])), 'earliest');
    renderFails([], ['keda.enabled=true', 'keda.offsetResetPolicy=latest'], /keda\.offsetResetPolicy "latest" disagrees with the guard's config\.kafka\.autoOffsetReset "earliest"/);
  });
});

describe('alert rules and dashboard', { timeout: 1_800_000 }, () => {
  let rules: Obj;
  let dashboard: Obj;
  before(() => {
    const objs = render([], ['prometheusRule.enabled=true', 'grafanaDashboard.enabled=true', 'serviceMonitor.enabled=true']);
    rules = one(objs, 'PrometheusRule');
    const cm = one(objs, 'ConfigMap', 'vq-vqguard-dashboard');
    assert.equal(cm.metadata.labels.grafana_dashboard, '1', 'picked up by the Grafana sidecar');
    dashboard = JSON.parse(cm.data['vqguard.json']) as Obj;
  });

  test('five alerts: lag growing, flag rate jump, dead-letter ratio, dropped dead letters, not ready; scoped to this release', () => {
    const alerts = (rules.spec.groups as Obj[]).flatMap((g) => g.rules as Obj[]);
    assert.deepEqual(alerts.map((a) => a.alert), ['VqguardConsumerLagGrowing', 'VqguardFlagRateJump', 'VqguardDeadLetterRate', 'VqguardDeadLettersDropped', 'VqguardNotReady']);
    for (const a of alerts) {
      assert.match(a.expr, /namespace="guards", job="vq-vqguard"/, `${a.alert} selects this release's metrics Service`);
      assert.ok(a.labels.severity && a.annotations.summary && a.annotations.description, `${a.alert} has severity, summary, description`);
    }
  });

  test('promtool check rules (scripts/promtool.sh)', (t) => {
    const file = join(dir, 'rules.yaml');
    writeFileSync(file, stringify({ groups: rules.spec.groups }));
    const r = run('bash', ['scripts/promtool.sh', 'check', 'rules', file]);
    if (r.status === 3) {
      // scripts/promtool.sh exits 3 only when promtool could not be obtained (printed why).
      t.diagnostic(`promtool unavailable: ${r.stderr.trim().split('\n').at(-1)}`);
      assert.fail(`promtool unavailable: ${r.stderr}`);
    }
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /SUCCESS: 5 rules found/);
    // The checker can fail: a broken expression is reported.
    const bad = join(dir, 'bad-rules.yaml');
    writeFileSync(bad, stringify({ groups: [{ name: 'x', rules: [{ alert: 'Broken', expr: 'sum by (topic (vqguard_consumer_lag)' }] }] }));
    const b = run('bash', ['scripts/promtool.sh', 'check', 'rules', bad]);
    assert.equal(b.status, 1, b.stdout + b.stderr);
  });

  test('dashboard: unique panel ids, every variable it uses is defined, data source chosen by variable', () => {
    const panels = dashboard.panels as Obj[];
    assert.ok(panels.length >= 10);
    assert.equal(new Set(panels.map((p) => p.id)).size, panels.length, 'unique panel ids');
    const vars = new Set((dashboard.templating.list as Obj[]).map((v) => v.name as string));
    const text = JSON.stringify(panels);
    for (const m of text.matchAll(/\$\{?([a-z_]+)\}?/g)) {
      if (m[1]!.startsWith('__')) continue; // Grafana's built-ins ($__rate_interval)
      assert.ok(vars.has(m[1]!), `variable $${m[1]} is defined`);
    }
    for (const p of panels) assert.equal(p.datasource?.uid, '${datasource}', `panel "${p.title}" uses the data source variable`);
  });

  test('every metric and label in the rules and dashboard is one the guard exports', async () => {
    const metrics = new GuardMetrics();
    const exported = new Map<string, Set<string>>();
    const labelNames = new Map(metrics.registry.getMetricsAsArray().map((m) => [(m as Obj).name as string, ((m as Obj).labelNames as string[] | undefined) ?? []]));
    for (const m of await metrics.registry.getMetricsAsJSON()) {
      const declared = new Set<string>(labelNames.get(m.name) ?? []);
      for (const v of m.values) for (const k of Object.keys(v.labels)) declared.add(k);
      if (String(m.type) === 'histogram') {
        exported.set(`${m.name}_bucket`, new Set([...declared, 'le']));
        exported.set(`${m.name}_sum`, declared);
        exported.set(`${m.name}_count`, declared);
      } else exported.set(m.name, declared);
    }
    // Labels Prometheus (ServiceMonitor) adds to every scraped series.
    const target = ['namespace', 'job', 'pod', 'instance', 'service', 'container', 'endpoint'];

    const exprs: string[] = [
      ...(rules.spec.groups as Obj[]).flatMap((g) => (g.rules as Obj[]).map((r) => r.expr as string)),
      ...(dashboard.panels as Obj[]).flatMap((p) => (p.targets as Obj[]).map((t) => t.expr as string)),
      ...(dashboard.templating.list as Obj[]).filter((v) => v.type === 'query').map((v) => v.query.query as string),
    ];
    let checked = 0;
    for (const e of exprs) {
      const names = [...e.matchAll(/\b([a-z_:][a-z0-9_:]*)\s*\{/g), ...e.matchAll(/label_values\(([a-z_:][a-z0-9_:]*)/g)].map((m) => m[1]!);
      assert.ok(names.length > 0, `a metric in: ${e}`);
      for (const name of names) {
        assert.ok(exported.has(name), `${name} (in ${e}) is exported by the guard`);
        checked++;
      }
      // Labels in matchers and in by (...): each must exist on some metric of the expression.
      const allowed = new Set([...target, ...names.flatMap((n) => [...exported.get(n)!])]);
      const used = [
        ...[...e.matchAll(/\{([^}]*)\}/g)].flatMap((m) => [...m[1]!.matchAll(/([a-z_]+)\s*=~?/g)].map((x) => x[1]!)),
        ...[...e.matchAll(/\bby\s*\(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((s) => s.trim()).filter(Boolean)),
      ];
      for (const l of used) assert.ok(allowed.has(l), `label ${l} (in ${e}) exists on ${names.join(', ')}`);
    }
    assert.ok(checked >= 25, `metric references checked (${checked})`);
    // And the standard process metrics the dashboard uses really carry the standard names.
    for (const std of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_p99_seconds']) {
      assert.ok(exported.has(std), std);
    }
  });
});
