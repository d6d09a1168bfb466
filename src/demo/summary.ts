/** Demo / replay summary from the guarded outputs against ground truth (pure). */
import type { GuardedImage } from '../records/avro.ts';

export interface StreamSummary {
  produced: number;
  processed: number;
  outputs: number;
  deadLettered: number;
  flagged: number;
  truePositives: number;
  falsePositives: number;
  falseNegatives: number;
  precision: number;
  recall: number;
  falsePositiveRate: number;
  accuracyBefore: number;
  accuracyAfter: number;
  accuracyAfterOnAdversarial: number;
  accuracyBeforeOnAdversarial: number;
  seconds: number;
  imagesPerSecond: number;
}

export function summarise(produced: number, outputs: GuardedImage[], deadLettered: number, seconds: number): StreamSummary {
  let tp = 0, fp = 0, fn = 0, tn = 0, before = 0, after = 0, labelled = 0, advN = 0, advBefore = 0, advAfter = 0;
  for (const o of outputs) {
    const adv = o.attributes.adversarial === 'true';
    const f = o.verdict.flagged;
    if (adv && f) tp++;
    else if (!adv && f) fp++;
    else if (adv && !f) fn++;
    else tn++;
    if (o.label !== null && o.label !== undefined) {
      labelled++;
      if (o.verdict.labelBefore === o.label) before++;
      if (o.verdict.labelAfter === o.label) after++;
      if (adv) {
        advN++;
        if (o.verdict.labelBefore === o.label) advBefore++;
        if (o.verdict.labelAfter === o.label) advAfter++;
      }
    }
  }
  const processed = outputs.length + deadLettered;
  return {
    produced,
    processed,
    outputs: outputs.length,
    deadLettered,
    flagged: tp + fp,
    truePositives: tp,
    falsePositives: fp,
    falseNegatives: fn,
    precision: tp + fp ? tp / (tp + fp) : NaN,
    recall: tp + fn ? tp / (tp + fn) : NaN,
    falsePositiveRate: fp + tn ? fp / (fp + tn) : NaN,
    accuracyBefore: labelled ? before / labelled : NaN,
    accuracyAfter: labelled ? after / labelled : NaN,
    accuracyBeforeOnAdversarial: advN ? advBefore / advN : NaN,
    accuracyAfterOnAdversarial: advN ? advAfter / advN : NaN,
    seconds,
    imagesPerSecond: seconds > 0 ? processed / seconds : NaN,
  };
}
