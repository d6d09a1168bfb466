/** A short description of the machine a benchmark ran on. */
import os from 'node:os';
import { backendInfo, tfVersion } from '../backend/tf.ts';

export function machineDescription() {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    platform: `${os.platform()} ${os.release()}`,
    node: process.versions.node,
    backend: backendInfo.packageName,
    gpu: backendInfo.gpu,
    tfVersion: tfVersion(),
  };
}
