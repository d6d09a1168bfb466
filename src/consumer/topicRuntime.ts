/**
 * Everything the guard needs for one configured input topic: how to match it, how to decode
 * its records, which detector (pipelines + classifier + calibration) to run, what to do with
 * a flagged record, and where outputs go. Built once at start-up.
 */
import { join, isAbsolute } from 'node:path';
import type { ModelRegistry } from '../models/registry.ts';
import { Detector } from '../detect/detector.ts';
import { defaultCalibrationPath, loadCalibration, type Calibration } from '../detect/calibration.ts';

import type { TopicConfig } from '../config/schema.ts';
import { schemaRegistryClient, TopicSchemaRegistry } from '../records/registry.ts';
import type { ImagePool } from './imagePool.ts';

export type TopicSettings = TopicConfig;

export interface TopicRuntime {
  settings: TopicSettings;
  matches(topic: string): boolean;
  detector: Detector;
  calibration: Calibration;
  modelVersions: Record<string, string>;
  channels: number;
  /** Set when the topic has `schemaRegistry`: framed Avro in and out (src/records/registry.ts). */
  registry?: TopicSchemaRegistry;
  /** Worker threads for image decode and encode; absent or null: the main thread. Shared by the guard's topics. */
  pool?: ImagePool | null;
}

export function buildTopicRuntime(s: TopicSettings, registries: (dir: string) => ModelRegistry, baseDir = process.cwd()): TopicRuntime {
  const modelsDir = isAbsolute(s.models) ? s.models : join(baseDir, s.models);
  const reg = registries(modelsDir);
  const calPath = s.calibration ? (isAbsolute(s.calibration) ? s.calibration : join(baseDir, s.calibration)) : defaultCalibrationPath(modelsDir, s.pipelines);
  const cal = loadCalibration(calPath);
  if (cal.pipelines.join(',') !== s.pipelines.join(',')) {
    throw new Error(`calibration ${calPath} is for pipelines ${cal.pipelines.join(', ')}, but the topic runs ${s.pipelines.join(', ')}`);
  }
  const calibration: Calibration = s.thresholds ? { ...cal, thresholds: { ...cal.thresholds, ...s.thresholds } } : cal;
  const detector = new Detector(reg.scoring(), s.pipelines.map((p) => reg.pipeline(p)), { temperature: cal.temperature, tileGrid: cal.tileGrid }, calibration);
  const versions: Record<string, string> = {};
  for (const p of s.pipelines) Object.assign(versions, reg.versions(p));
  const clf = reg.inputShape();
  const channels = s.image.colour === 'rgb' ? 3 : 1;
  if (clf.height !== s.image.height || clf.width !== s.image.width || clf.channels !== channels) {
    throw new Error(
      `topic ${s.input ?? s.inputPattern}: image policy ${s.image.width}x${s.image.height}x${channels} does not match the models' input ${clf.width}x${clf.height}x${clf.channels}`,
    );
  }
  const re = s.inputPattern ? new RegExp(s.inputPattern) : null;
  return {
    settings: s,
    matches: (topic) => (re ? re.test(topic) : topic === s.input),
    detector,
    calibration,
    modelVersions: versions,
    channels,
    ...(s.schemaRegistry ? { registry: new TopicSchemaRegistry(schemaRegistryClient(s.schemaRegistry, { baseDir }), { output: s.output, alerts: s.alerts, deadLetter: s.deadLetterFormat === 'connect' ? undefined : s.deadLetter }) } : {}),
  };
}
