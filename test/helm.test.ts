// The Helm chart (deploy/helm/vqguard): `helm lint --strict` and `helm template` for standalone and
// sidecar mode, GPU on and off, and the ci/ values files; the rendered objects are parsed and checked.
// Also a parent chart that pulls the guard in as a sidecar through the library templates, and static
// checks of the Dockerfile (no Docker engine here to build it).
//
// helm comes from scripts/helm.sh (builds it into .cache/bin on first use: minutes, once).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CHART = 'deploy/helm/vqguard';
const CI = join(CHART, 'ci');
const NS = 'guards';

type Obj = Record<string, any>;

function helm(args: string[], opts: { expectFail?: boolean } = {}): { stdout: string; stderr: string } {
  const r = spawnSync('bash', ['scripts/helm.sh', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    timeout: 30 * 60 * 1000,
  });
  if (r.error) throw r.error;
  if (opts.expectFail) {
    assert.notEqual(r.status, 0, `helm ${args.join(' ')} should fail\n${r.stdout}`);
  } else {
    assert.equal(r.status, 0, `helm ${args.join(' ')} exited ${r.status}\n${r.stdout}\n${r.stderr}`);
  }
  return { stdout: r.stdout, stderr: r.stderr };
}

function valueArgs(files: string[], set: string[]): string[] {
  return [...files.flatMap((f) => ['-f', f]), ...set.flatMap((s) => ['--set', s])];
}

function template(files: string[] = [], set: string[] = [], chart = CHART): Obj[] {
  const { stdout } = helm(['template', 'vq', chart, '--namespace', NS, ...valueArgs(files, set)]);
  const docs = parseAllDocuments(stdout);
  const out: Obj[] = [];
  for (const d of docs) {
    assert.deepEqual(d.errors, [], `rendered YAML parses: ${d.errors.map(String).join('; ')}`);
    const js = d.toJS() as Obj | null;
    if (js) out.push(js);
  }
  for (const o of out) {
    assert.ok(o.apiVersion && o.kind && o.metadata?.name, `object has apiVersion/kind/name: ${JSON.stringify(o).slice(0, 200)}`);
  }
  return out;
}

const ofKind = (objs: Obj[], kind: string): Obj[] => objs.filter((o) => o.kind === kind);
function one(objs: Obj[], kind: string, name?: string): Obj {
  const found = ofKind(objs, kind).filter((o) => name === undefined || o.metadata.name === name);
  assert.equal(found.length, 1, `exactly one ${kind}${name ? ` ${name}` : ''} (got ${found.length})`);
  return found[0]!;
}

function guardYaml(objs: Obj[], name = 'vq-vqguard'): Obj {
  const cm = one(objs, 'ConfigMap', name);
  assert.equal(typeof cm.data?.['guard.yaml'], 'string');
  const cfg = parse(cm.data['guard.yaml']) as Obj;
  assert.equal(typeof cfg, 'object');
  return cfg;
}

function guardContainer(podSpec: Obj, list = 'containers'): Obj {
  const c = (podSpec[list] as Obj[] | undefined)?.find((x) => x.name === 'vqguard');
  assert.ok(c, `a vqguard container in ${list}`);
  return c;
}

function assertHardenedContainer(c: Obj, readiness = true): void {
  assert.equal(c.livenessProbe?.httpGet?.path, '/healthz');
  // Sidecar mode: no readiness probe by default (sidecar.readinessProbe.enabled couples it).
  assert.equal(c.readinessProbe?.httpGet?.path, readiness ? '/readyz' : undefined);
  assert.equal(c.startupProbe?.httpGet?.path, '/healthz');
  assert.deepEqual(c.args, ['run', '--config', '/etc/vqguard/guard.yaml']);
  const port = c.ports?.find((p: Obj) => p.name === c.livenessProbe.httpGet.port);
  assert.equal(port?.containerPort, 9464, 'probes use the declared HTTP port');
  const sc = c.securityContext;
  assert.equal(sc?.runAsNonRoot, true);
  assert.equal(sc?.runAsUser, 10001);
  assert.equal(sc?.readOnlyRootFilesystem, true);
  assert.equal(sc?.allowPrivilegeEscalation, false);
  assert.deepEqual(sc?.capabilities?.drop, ['ALL']);
  assert.equal(sc?.seccompProfile?.type, 'RuntimeDefault');
  const mounts = new Map((c.volumeMounts as Obj[]).map((m) => [m.name, m]));
  assert.equal(mounts.get('vqguard-config')?.mountPath, '/etc/vqguard');
  assert.equal(mounts.get('vqguard-config')?.readOnly, true);
  assert.equal(mounts.get('vqguard-tmp')?.mountPath, '/tmp');
}

function assertVolumes(podSpec: Obj, configMapName: string): Map<string, Obj> {
  const vols = new Map((podSpec.volumes as Obj[]).map((v) => [v.name, v]));
  assert.equal(vols.get('vqguard-config')?.configMap?.name, configMapName, 'guard.yaml ConfigMap mounted');
  assert.ok(vols.get('vqguard-tmp')?.emptyDir, 'emptyDir at /tmp');
  for (const m of guardContainer(podSpec, podSpec.initContainers?.some((c: Obj) => c.name === 'vqguard') ? 'initContainers' : 'containers').volumeMounts as Obj[]) {
    assert.ok(vols.has(m.name), `volume for mount ${m.name}`);
  }
  return vols;
}

const gpuLimit = (c: Obj): unknown => c.resources?.limits?.['nvidia.com/gpu'];

before(() => {
  // First use may build helm from the Go module proxy (minutes); later calls are instant.
  const r = spawnSync('bash', ['scripts/helm.sh', '--install-only'], { cwd: ROOT, encoding: 'utf8', timeout: 30 * 60 * 1000 });
  assert.equal(r.status, 0, `scripts/helm.sh --install-only failed:\n${r.stderr}`);
  const v = helm(['version', '--short']).stdout.trim();
  assert.match(v, /^v3\./, `helm 3 (${v})`);
});

describe('helm lint --strict', () => {
  const combos: Array<[string, string[], string[]]> = [
    ['defaults', [], []],
    ['standalone, GPU off', [join(CI, 'standalone-cpu-values.yaml')], []],
    ['standalone, GPU on', [join(CI, 'standalone-gpu-values.yaml')], []],
    ['standalone defaults + gpu.enabled', [], ['gpu.enabled=true']],
    ['sidecar, GPU off', [join(CI, 'sidecar-values.yaml')], []],
    ['sidecar, GPU on', [join(CI, 'sidecar-values.yaml')], ['gpu.enabled=true']],
    ['sidecar, native sidecar', [join(CI, 'sidecar-values.yaml')], ['sidecar.nativeSidecar=true']],
    ['everything enabled', [join(CI, 'everything-enabled-values.yaml')], []],
    ['statefulset (exactly-once)', [join(CI, 'statefulset-values.yaml')], []],
  ];
  for (const [name, files, set] of combos) {
    test(name, () => {
      const { stdout } = helm(['lint', '--strict', CHART, ...valueArgs(files, set)]);
      assert.match(stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    });
  }
});

describe('standalone', () => {
  test('CPU: Deployment with probes, hardened container, ConfigMap mounted, no GPU', () => {
    const objs = template([join(CI, 'standalone-cpu-values.yaml')]);
    const dep = one(objs, 'Deployment', 'vq-vqguard');
    assert.equal(dep.metadata.namespace, NS);
    assert.equal(dep.spec.replicas, 2);
    const pod = dep.spec.template.spec;
    const c = guardContainer(pod);
    assertHardenedContainer(c);
    assertVolumes(pod, 'vq-vqguard');
    assert.equal(gpuLimit(c), undefined, 'no nvidia.com/gpu when GPU off');
    assert.ok(!JSON.stringify(objs).includes('nvidia.com/gpu'), 'nvidia.com/gpu appears nowhere');
    assert.equal(c.image, 'ghcr.io/vqguard/vqguard:0.1.0');
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.securityContext.fsGroup, 10001);
    assert.equal(pod.automountServiceAccountToken, false);
    assert.equal(pod.terminationGracePeriodSeconds, 30, 'shutdownTimeoutMs 20000 -> 20 s + 10 s');
    assert.equal(pod.nodeSelector, undefined);
    assert.equal(pod.tolerations, undefined);
    // Selector matches the pod labels; config checksum rolls the pods on config changes.
    for (const [k, v] of Object.entries(dep.spec.selector.matchLabels)) assert.equal(dep.spec.template.metadata.labels[k], v);
    assert.match(dep.spec.template.metadata.annotations['checksum/config'], /^[0-9a-f]{64}$/);

    const cfg = guardYaml(objs);
    assert.deepEqual(cfg.topics.map((t: Obj) => t.input), ['images.raw']);
    assert.equal(cfg.http.port, 9464);
    assert.equal(cfg.http.host, '0.0.0.0');
    assert.deepEqual(cfg.kafka.brokers, ['kafka:9092']);
    assert.equal(cfg.kafka.sasl, undefined);
    assert.equal(cfg.kafka.ssl, undefined);

    const svc = one(objs, 'Service', 'vq-vqguard');
    assert.equal(svc.spec.ports[0].targetPort, 'vqguard-http');
    assert.equal(svc.spec.ports[0].port, 9464);
    assert.deepEqual(svc.spec.selector, dep.spec.selector.matchLabels);
    for (const kind of ['PodDisruptionBudget', 'ScaledObject', 'ServiceMonitor']) {
      assert.equal(ofKind(objs, kind).length, 0, `no ${kind} unless enabled`);
    }
  });

  test('GPU: nvidia.com/gpu limit 1, CUDA image tag, GPU tolerations and nodeSelector', () => {
    const objs = template([join(CI, 'standalone-gpu-values.yaml')]);
    const pod = one(objs, 'Deployment').spec.template.spec;
    const c = guardContainer(pod);
    assertHardenedContainer(c);
    assert.equal(Number(gpuLimit(c)), 1);
    assert.equal(c.image, 'ghcr.io/vqguard/vqguard:0.1.0-cuda');
    assert.equal(c.resources.limits.memory, '4Gi', 'user resources kept next to the GPU limit');
    assert.equal(c.resources.requests.cpu, '1');
    assert.ok(c.env.some((e: Obj) => e.name === 'TF_FORCE_GPU_ALLOW_GROWTH' && e.value === 'true'));
    assert.equal(pod.runtimeClassName, 'nvidia');
    assert.equal(pod.nodeSelector['cloud.google.com/gke-accelerator'], 'nvidia-tesla-t4');
    assert.ok(pod.tolerations.some((t: Obj) => t.key === 'nvidia.com/gpu' && t.operator === 'Exists'));
  });

  test('gpu.enabled on defaults: tag from appVersion gets the suffix once; count is honoured', () => {
    let c = guardContainer(one(template([], ['gpu.enabled=true']), 'Deployment').spec.template.spec);
    assert.equal(c.image, 'ghcr.io/vqguard/vqguard:0.1.0-cuda');
    assert.equal(Number(gpuLimit(c)), 1);
    c = guardContainer(one(template([], ['gpu.enabled=true', 'image.tag=1.2.3-cuda', 'gpu.count=2']), 'Deployment').spec.template.spec);
    assert.equal(c.image, 'ghcr.io/vqguard/vqguard:1.2.3-cuda');
    assert.equal(Number(gpuLimit(c)), 2);
  });

  test('everything enabled: PDB, ScaledObject (kafka trigger), ServiceMonitor, SASL/TLS secrets, models PVC', () => {
    const objs = template([join(CI, 'everything-enabled-values.yaml')]);
    const dep = one(objs, 'Deployment', 'vq-vqguard');
    assert.equal(dep.spec.replicas, undefined, 'KEDA owns the replica count');
    const pod = dep.spec.template.spec;
    const c = guardContainer(pod);
    assertHardenedContainer(c);
    const vols = assertVolumes(pod, 'vq-vqguard');
    assert.equal(Number(gpuLimit(c)), 1);
    assert.equal(pod.terminationGracePeriodSeconds, 40);
    assert.ok(c.env.some((e: Obj) => e.name === 'UV_THREADPOOL_SIZE'));

    // SASL secret mounted, and guard.yaml points at the file.
    const sasl = vols.get('vqguard-sasl');
    assert.equal(sasl?.secret?.secretName, 'kafka-sasl');
    assert.deepEqual(sasl?.secret?.items, [{ key: 'sasl-password', path: 'password' }]);
    assert.equal(sasl?.secret?.defaultMode, 0o440);
    const mounts = new Map((c.volumeMounts as Obj[]).map((m) => [m.name, m]));
    assert.equal(mounts.get('vqguard-sasl')?.mountPath, '/var/run/secrets/vqguard/sasl');
    assert.equal(mounts.get('vqguard-sasl')?.readOnly, true);
    const tls = vols.get('vqguard-tls');
    assert.equal(tls?.secret?.secretName, 'kafka-mtls');
    assert.deepEqual(tls?.secret?.items.map((i: Obj) => i.path), ['ca.crt', 'tls.crt', 'tls.key']);
    assert.equal(mounts.get('vqguard-tls')?.mountPath, '/var/run/secrets/vqguard/tls');
    assert.equal(vols.get('vqguard-models')?.persistentVolumeClaim?.claimName, 'vqguard-models');
    assert.equal(mounts.get('vqguard-models')?.mountPath, '/app/models');
    assert.equal(mounts.get('vqguard-models')?.readOnly, true);

    const cfg = guardYaml(objs);
    assert.deepEqual(cfg.topics.map((t: Obj) => t.input), ['images.raw', 'images.partner']);
    assert.deepEqual(cfg.topics.map((t: Obj) => t.action), ['forward-cleaned', 'forward-original']);
    assert.equal(cfg.kafka.sasl.passwordFile, '/var/run/secrets/vqguard/sasl/password');
    assert.equal(cfg.kafka.sasl.mechanism, 'scram-sha-512');
    assert.equal(cfg.kafka.sasl.username, 'vqguard');
    assert.deepEqual(cfg.kafka.ssl, {
      enabled: true,
      caFile: '/var/run/secrets/vqguard/tls/ca.crt',
      certFile: '/var/run/secrets/vqguard/tls/tls.crt',
      keyFile: '/var/run/secrets/vqguard/tls/tls.key',
    });
    assert.equal(cfg.alerts.webhook.url, 'https://alerts.example.com/hooks/vqguard');
    assert.equal(cfg.maxInFlight, 128);

    const pdb = one(objs, 'PodDisruptionBudget');
    assert.equal(pdb.apiVersion, 'policy/v1');
    assert.equal(pdb.spec.minAvailable, 1);
    assert.deepEqual(pdb.spec.selector.matchLabels, dep.spec.selector.matchLabels);

    const so = one(objs, 'ScaledObject');
    assert.equal(so.apiVersion, 'keda.sh/v1alpha1');
    assert.deepEqual(so.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'vq-vqguard' });
    assert.equal(so.spec.minReplicaCount, 1);
    assert.equal(so.spec.maxReplicaCount, 12);
    const [trigger] = so.spec.triggers;
    assert.equal(trigger.type, 'kafka');
    assert.deepEqual(trigger.metadata, {
      bootstrapServers: 'kafka-bootstrap.kafka.svc:9093',
      consumerGroup: 'vqguard-images',
      topic: 'images.raw',
      lagThreshold: '200',
      offsetResetPolicy: 'earliest', // the guard's kafka.autoOffsetReset default
    });
    assert.deepEqual(trigger.authenticationRef, { name: 'vqguard-kafka-auth' });

    const sm = one(objs, 'ServiceMonitor');
    assert.equal(sm.apiVersion, 'monitoring.coreos.com/v1');
    assert.equal(sm.metadata.labels.release, 'prometheus');
    assert.deepEqual(sm.spec.endpoints, [{ port: 'http-metrics', path: '/metrics', interval: '15s', scrapeTimeout: '10s' }]);
    const svc = one(objs, 'Service');
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) assert.equal(svc.metadata.labels[k], v, `ServiceMonitor selects the Service (${k})`);
    assert.ok(svc.spec.ports.some((p: Obj) => p.name === 'http-metrics'));
  });

  test('each optional object alone; KEDA defaults come from config', () => {
    const pdbOnly = template([], ['podDisruptionBudget.enabled=true']);
    assert.equal(ofKind(pdbOnly, 'PodDisruptionBudget').length, 1);
    assert.equal(ofKind(pdbOnly, 'ScaledObject').length + ofKind(pdbOnly, 'ServiceMonitor').length, 0);

    const kedaOnly = template([], ['keda.enabled=true']);
    assert.equal(ofKind(kedaOnly, 'PodDisruptionBudget').length + ofKind(kedaOnly, 'ServiceMonitor').length, 0);
    const trig = one(kedaOnly, 'ScaledObject').spec.triggers[0];
    assert.deepEqual(trig.metadata, {
      bootstrapServers: 'kafka:9092',
      consumerGroup: 'vqguard',
      topic: 'images.raw',
      lagThreshold: '100',
      offsetResetPolicy: 'earliest',
    });

    const smOnly = template([], ['serviceMonitor.enabled=true']);
    assert.equal(ofKind(smOnly, 'ServiceMonitor').length, 1);
    assert.equal(ofKind(smOnly, 'PodDisruptionBudget').length + ofKind(smOnly, 'ScaledObject').length, 0);
  });

  test('SASL secret only when kafka.sasl.existingSecret is set; passwordEnv replaced by the file', () => {
    const objs = template([], ['kafka.sasl.existingSecret=my-sasl', 'config.kafka.sasl.passwordEnv=KAFKA_PASSWORD', 'config.kafka.sasl.mechanism=plain']);
    const pod = one(objs, 'Deployment').spec.template.spec;
    const vols = assertVolumes(pod, 'vq-vqguard');
    assert.equal(vols.get('vqguard-sasl')?.secret?.secretName, 'my-sasl');
    assert.deepEqual(vols.get('vqguard-sasl')?.secret?.items, [{ key: 'password', path: 'password' }]);
    assert.ok(guardContainer(pod).volumeMounts.some((m: Obj) => m.name === 'vqguard-sasl'));
    const cfg = guardYaml(objs);
    assert.deepEqual(cfg.kafka.sasl, { mechanism: 'plain', username: 'vqguard', passwordFile: '/var/run/secrets/vqguard/sasl/password' });
    assert.equal(vols.has('vqguard-tls'), false);

    const none = one(template(), 'Deployment').spec.template.spec;
    assert.ok(!none.volumes.some((v: Obj) => v.secret), 'no secret volumes by default');
  });

  test('TLS without a secret: ssl.enabled only (system CAs)', () => {
    const objs = template([], ['kafka.tls.enabled=true']);
    assert.deepEqual(guardYaml(objs).kafka.ssl, { enabled: true });
    assert.ok(!one(objs, 'Deployment').spec.template.spec.volumes.some((v: Obj) => v.secret));
  });

  test('config changes change the checksum; a custom http.port moves port, probes and Service target', () => {
    const a = one(template(), 'Deployment').spec.template.metadata.annotations['checksum/config'];
    const objs = template([], ['config.http.port=8081']);
    const dep = one(objs, 'Deployment');
    assert.notEqual(dep.spec.template.metadata.annotations['checksum/config'], a);
    const c = guardContainer(dep.spec.template.spec);
    assert.equal(c.ports[0].containerPort, 8081);
    assert.ok(c.env.some((e: Obj) => e.name === 'VQGUARD_HEALTH_PORT' && e.value === '8081'));
    assert.equal(guardYaml(objs).http.port, 8081);
  });

  test('bad values fail to render', () => {
    helm(['template', 'vq', CHART, '--set', 'mode=daemon'], { expectFail: true });
    helm(['template', 'vq', CHART, '--set', 'mode=sidecar', '--set', 'serviceMonitor.enabled=true'], { expectFail: true });
  });
});

describe('sidecar', () => {
  for (const gpu of [false, true]) {
    test(`GPU ${gpu ? 'on' : 'off'}: no Deployment; guard.yaml ConfigMap and the sidecar snippet ConfigMap`, () => {
      const objs = template([join(CI, 'sidecar-values.yaml')], [`gpu.enabled=${gpu}`]);
      assert.equal(ofKind(objs, 'Deployment').length, 0, 'no Deployment in sidecar mode');
      for (const kind of ['PodDisruptionBudget', 'ScaledObject', 'ServiceMonitor', 'StatefulSet', 'DaemonSet', 'Pod']) {
        assert.equal(ofKind(objs, kind).length, 0, `no ${kind}`);
      }
      const cfg = guardYaml(objs);
      assert.deepEqual(cfg.topics.map((t: Obj) => t.input), ['uploads.images']);
      assert.equal(cfg.kafka.sasl.passwordFile, '/var/run/secrets/vqguard/sasl/password');
      assert.equal(cfg.kafka.sasl.username, 'image-ingest');
      assert.deepEqual(cfg.kafka.ssl, { enabled: true, caFile: '/var/run/secrets/vqguard/tls/ca.crt' });

      const snip = one(objs, 'ConfigMap', 'vq-vqguard-sidecar');
      const [container] = parse(snip.data['container.yaml']) as Obj[];
      assert.ok(container);
      assertHardenedContainer(container, false);
      assert.equal(container.restartPolicy, undefined);
      assert.equal(container.image, gpu ? 'ghcr.io/vqguard/vqguard:0.1.0-cuda' : 'ghcr.io/vqguard/vqguard:0.1.0');
      assert.equal(gpu ? Number(gpuLimit(container)) : gpuLimit(container), gpu ? 1 : undefined);
      const volumes = parse(snip.data['volumes.yaml']) as Obj[];
      const pod = { containers: [{ name: 'app' }, container], volumes };
      const vols = assertVolumes(pod, 'vq-vqguard');
      assert.equal(vols.get('vqguard-sasl')?.secret?.secretName, 'kafka-sasl');
      assert.equal(vols.get('vqguard-sasl')?.secret?.defaultMode, 0o444, 'readable without the parent pod setting fsGroup');
      assert.equal(vols.get('vqguard-tls')?.secret?.secretName, 'kafka-ca');

      const patch = parse(snip.data['patch.yaml']) as Obj;
      assert.deepEqual(patch.spec.template.spec.containers, [container]);
      assert.deepEqual(patch.spec.template.spec.volumes, volumes);
      assert.match(patch.spec.template.metadata.annotations['checksum/vqguard-config'], /^[0-9a-f]{64}$/);

      // The metrics Service selects the parent pods through sidecar.podSelector.
      const svc = one(objs, 'Service');
      assert.deepEqual(svc.spec.selector, { app: 'image-ingest' });
      assert.equal(svc.spec.ports[0].targetPort, 'vqguard-http');
    });
  }

  test('without podSelector: only the two ConfigMaps', () => {
    const objs = template([], ['mode=sidecar']);
    assert.deepEqual(objs.map((o) => `${o.kind}/${o.metadata.name}`).sort(), ['ConfigMap/vq-vqguard', 'ConfigMap/vq-vqguard-sidecar']);
  });

  test('nativeSidecar: restartPolicy Always, patch goes to initContainers', () => {
    const objs = template([join(CI, 'sidecar-values.yaml')], ['sidecar.nativeSidecar=true']);
    const snip = one(objs, 'ConfigMap', 'vq-vqguard-sidecar');
    const [container] = parse(snip.data['container.yaml']) as Obj[];
    assert.equal(container?.restartPolicy, 'Always');
    const patch = parse(snip.data['patch.yaml']) as Obj;
    assert.equal(patch.spec.template.spec.containers, undefined);
    assert.equal(patch.spec.template.spec.initContainers[0].name, 'vqguard');
  });
});

describe('parent chart including the sidecar through the library templates', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'vqguard-parent-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function writeParent(name: string, chartYamlExtra: string, include: (what: string) => string, values: string): string {
    const p = join(dir, name);
    mkdirSync(join(p, 'templates'), { recursive: true });
    mkdirSync(join(p, 'charts'), { recursive: true });
    cpSync(join(ROOT, CHART), join(p, 'charts', 'vqguard'), { recursive: true });
    writeFileSync(join(p, 'Chart.yaml'), `apiVersion: v2\nname: image-ingest\nversion: 1.0.0\nappVersion: "1.0.0"\n${chartYamlExtra}`);
    writeFileSync(join(p, 'values.yaml'), values);
    writeFileSync(
      join(p, 'templates', 'deployment.yaml'),
      `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-ingest
spec:
  replicas: 1
  selector:
    matchLabels:
      app: image-ingest
  template:
    metadata:
      labels:
        app: image-ingest
      annotations:
        checksum/vqguard: {{ ${include('vqguard.sidecarConfigChecksum')} }}
    spec:
      securityContext:
        fsGroup: 10001
      containers:
        - name: app
          image: example/ingest:1.0.0
          volumeMounts:
            - name: data
              mountPath: /data
        {{- ${include('vqguard.sidecarContainer')} | nindent 8 }}
      volumes:
        - name: data
          emptyDir: {}
        {{- ${include('vqguard.sidecarVolumes')} | nindent 8 }}
`,
    );
    return p;
  }

  function checkParent(objs: Obj[], subchartName: string): void {
    const deps = ofKind(objs, 'Deployment');
    assert.deepEqual(deps.map((d) => d.metadata.name), ['vq-ingest'], 'only the parent Deployment');
    const pod = deps[0]!.spec.template.spec;
    assert.deepEqual(pod.containers.map((c: Obj) => c.name), ['app', 'vqguard']);
    const c = guardContainer(pod);
    assertHardenedContainer(c, false);
    assert.equal(c.image, 'registry.example/vqguard:0.2.0', 'subchart values (not the parent\'s) drive the container');
    const vols = assertVolumes(pod, `vq-${subchartName}`);
    assert.ok(vols.has('data'));
    assert.equal(vols.get('vqguard-sasl')?.secret?.secretName, 'ingest-kafka');
    const cfg = guardYaml(objs, `vq-${subchartName}`);
    assert.deepEqual(cfg.topics.map((t: Obj) => t.input), ['ingest.images']);
    assert.equal(deps[0]!.spec.template.metadata.annotations['checksum/vqguard'], sidecarChecksum(objs, `vq-${subchartName}`));
  }

  function sidecarChecksum(objs: Obj[], cm: string): string {
    const snip = one(objs, 'ConfigMap', `${cm}-sidecar`);
    return (parse(snip.data['patch.yaml']) as Obj).spec.template.metadata.annotations['checksum/vqguard-config'];
  }

  const subValues = `
  mode: sidecar
  image:
    repository: registry.example/vqguard
    tag: "0.2.0"
  kafka:
    sasl:
      existingSecret: ingest-kafka
  config:
    kafka:
      brokers: [kafka:9092]
      groupId: ingest
    topics:
      - input: ingest.images
        pipeline: split2>full
        action: forward-cleaned
        output: ingest.images.clean
        deadLetter: ingest.images.dlq
`;

  test('dependency in charts/: include "vqguard.sidecarContainer" .', () => {
    const p = writeParent('plain', 'dependencies:\n  - name: vqguard\n    version: 0.1.0\n', (w) => `include "${w}" .`, `vqguard:${subValues}`);
    helm(['lint', '--strict', p]);
    checkParent(template([], [], p), 'vqguard');
  });

  test('aliased dependency: include with (dict "root" . "subchart" "guard")', () => {
    const p = writeParent(
      'aliased',
      'dependencies:\n  - name: vqguard\n    version: 0.1.0\n    alias: guard\n',
      (w) => `include "${w}" (dict "root" . "subchart" "guard")`,
      `guard:${subValues}`,
    );
    helm(['lint', '--strict', p]);
    checkParent(template([], [], p), 'guard');
  });

});

describe('Dockerfile (static checks: no Docker engine here)', () => {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  // Join continuation lines, drop comments.
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const stages = new Map<string, string[]>();
  let current = '';
  for (const l of lines) {
    const m = /^FROM\s+\S+(?:\s+AS\s+(\S+))?/i.exec(l);
    if (m) {
      current = m[1] ?? `stage${stages.size}`;
      stages.set(current, []);
    } else if (current) stages.get(current)!.push(l);
  }

  for (const target of ['cpu', 'cuda']) {
    test(`target ${target}: non-root, entrypoint, healthcheck, models baked in`, () => {
      const body = stages.get(target);
      assert.ok(body, `stage ${target}`);
      assert.ok(body.includes('USER 10001:10001'));
      assert.ok(body.includes('ENTRYPOINT ["node", "/app/bin/vqguard.mjs"]'));
      assert.ok(body.includes('CMD ["run", "--config", "/etc/vqguard/guard.yaml"]'));
      assert.ok(body.some((l) => /^HEALTHCHECK .*\/healthz/.test(l)));
      assert.ok(body.some((l) => /^COPY models\/ \.\/models\/$/.test(l)));
      assert.ok(body.some((l) => /^WORKDIR \/app$/.test(l)));
      assert.ok(body.some((l) => /HOME=\/tmp/.test(l) && /TMPDIR=\/tmp/.test(l)), 'writes go to /tmp');
      assert.ok(body.some((l) => /^COPY --from=build-\w+ \/app\/node_modules/.test(l)));
      // The compiled product only: no TypeScript sources, no dev tools.
      assert.ok(body.includes('COPY --from=build-js /app/dist/src ./dist/src'));
      assert.ok(!body.some((l) => /^COPY (src|tools)\//.test(l)));
    });
  }

  test('cpu is the default (last) target; cuda builds tfjs-node-gpu', () => {
    assert.equal([...stages.keys()].at(-1), 'cpu');
    assert.ok(stages.get('build-cuda')!.some((l) => l.includes('@tensorflow/tfjs-node-gpu@4.22.0')));
    assert.ok(stages.get('build-cuda')!.some((l) => l.includes('VQGUARD_TFJS_PACKAGE=@tensorflow/tfjs-node-gpu')));
  });

  test('.dockerignore lets every COPY source from the context through', () => {
    const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    assert.equal(ignore[0], '*', 'allow-list');
    const allowed = ignore.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
    for (const l of lines.filter((x) => /^COPY /.test(x) && !/--from=/.test(x))) {
      const srcs = l.split(/\s+/).slice(1, -1).filter((s) => !s.startsWith('--'));
      for (const s of srcs) assert.ok(allowed.includes(s.replace(/\/$/, '')), `${s} allowed by .dockerignore`);
    }
  });
});
