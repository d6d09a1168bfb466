/** `vqguard doctor [--json]`: what backend runs, where libtensorflow is, and broker reachability. */
import type { Command } from 'commander';
import { jsonOption } from './options.ts';
import { createRequire } from 'node:module';
import { brokersFromEnv } from '../config/schema.ts';
import { tf, backendInfo, tfVersion, getBackendInfo } from '../backend/tf.ts';
import { probeWebgpu } from '../backend/webgpu/load.ts';

const require = createRequire(import.meta.url);

function pkgVersion(name: string): string | null {
  try {
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    return null;
  }
}

async function brokerCheck(brokers: string[]): Promise<{ brokers: string[]; reachable: boolean; error?: string; clusterId?: string }> {
  const { Kafka, logLevel } = await import('kafkajs');
  const kafka = new Kafka({ clientId: 'vqguard-doctor', brokers, logLevel: logLevel.NOTHING, connectionTimeout: 3000, retry: { retries: 1 } });
  const admin = kafka.admin();
  try {
    await admin.connect();
    const c = await admin.describeCluster();
    return { brokers, reachable: true, clusterId: c.clusterId };
  } catch (e) {
    return { brokers, reachable: false, error: (e as Error).message };
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

export async function doctorReport(brokers?: string[]) {
  await tf.ready();
  const devices: { name: string; type: string }[] = [{ name: '/device:CPU:0', type: 'CPU' }];
  if (backendInfo.gpu) devices.push({ name: '/device:GPU:0', type: 'GPU' });
  const info = getBackendInfo();
  // The WebGPU adapter: the one in use, else probed now for the report (not used).
  let adapter = info.adapter;
  let adapterInUse = info.kind === 'webgpu';
  let adapterNote: string | null = null;
  if (!adapter) {
    const p = await probeWebgpu();
    if (p.ok) adapter = p.adapter;
    else adapterNote = p.reason;
    adapterInUse = false;
  }
  return {
    choice: info.choice,
    kind: info.kind,
    notTaken: info.notTaken,
    adapter,
    adapterInUse,
    adapterNote,
    backend: tf.getBackend(),
    native: backendInfo.native,
    gpu: backendInfo.gpu,
    cudaDriver: backendInfo.cudaDriver,
    tfVersion: tfVersion(),
    devices,
    package: backendInfo.packageName,
    libtensorflow: backendInfo.libtensorflowDir,
    libtensorflowSource: backendInfo.libtensorflowProvenance,
    node: process.versions.node,
    versions: {
      vqguard: '0.1.0',
      '@tensorflow/tfjs-node': pkgVersion('@tensorflow/tfjs-node'),
      '@tensorflow/tfjs-node-gpu': pkgVersion('@tensorflow/tfjs-node-gpu'),
      '@tensorflow/tfjs-backend-webgpu': pkgVersion('@tensorflow/tfjs-backend-webgpu'),
      webgpu: pkgVersion('webgpu'),
      kafkajs: pkgVersion('kafkajs'),
      sharp: pkgVersion('sharp'),
      avsc: pkgVersion('avsc'),
    },
    cpus: (await import('node:os')).cpus().length,
    broker: brokers && brokers.length ? await brokerCheck(brokers) : null,
  };
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .addOption(jsonOption())
    .option('--brokers <list>', 'Kafka brokers to check (default: $KAFKA_BROKERS)')
    .action(async (o: { json?: boolean; brokers?: string }) => {
      const list = brokersFromEnv(o.brokers);
      const r = await doctorReport(list);
      if (o.json) {
        process.stdout.write(JSON.stringify(r) + '\n');
        return;
      }
      const a = r.adapter;
      const lines = [
        `choice         ${r.choice} -> ${r.kind}`,
        `backend        ${r.backend} (${r.kind === 'webgpu' ? 'WebGPU on Dawn' : r.native ? 'native libtensorflow' : 'PURE JS - slow'})`,
        ...Object.entries(r.notTaken).map(([k, v]) => `not ${k.padEnd(10)} ${v}`),
        `adapter        ${a ? `${[a.vendor, a.architecture, a.description || a.device].filter(Boolean).join(' / ')}${a.cpu ? ' (software/CPU)' : ''}${r.adapterInUse ? ' (in use)' : ' (not used)'}` : `none (${r.adapterNote})`}`,
        ...(a ? [`limits         maxStorageBufferBindingSize ${a.limits.maxStorageBufferBindingSize}, maxBufferSize ${a.limits.maxBufferSize}, maxComputeWorkgroupsPerDimension ${a.limits.maxComputeWorkgroupsPerDimension}`] : []),
        `package        ${r.package}`,
        `TensorFlow     ${r.tfVersion ?? 'n/a'}`,
        `devices        ${r.devices.map((d) => d.name).join(', ')}`,
        `GPU            ${r.gpu ? 'yes' : 'no'}${r.cudaDriver && !r.gpu ? ' (CUDA driver present but tfjs-node-gpu not installed)' : ''}`,
        `libtensorflow  ${r.libtensorflow ?? 'n/a'} (${r.libtensorflowSource ?? 'n/a'})`,
        `node           ${r.node}, ${r.cpus} CPUs`,
        ...Object.entries(r.versions).map(([k, v]) => `${k.padEnd(14)} ${v ?? 'not installed'}`),
        `broker         ${r.broker ? `${r.broker.brokers.join(',')} ${r.broker.reachable ? 'reachable' : `UNREACHABLE: ${r.broker.error}`}` : 'not configured'}`,
      ];
      process.stdout.write(lines.join('\n') + '\n');
      if (r.broker && !r.broker.reachable) process.exitCode = 2;
    });
}
