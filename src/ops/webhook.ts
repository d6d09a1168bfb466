/**
 * Optional webhook delivery of alerts: HTTP POST of the alert JSON, with a per-attempt
 * timeout, retries with exponential backoff (p-retry), and a token-bucket rate limit.
 * Delivery runs beside the stream: enqueue() never blocks or throws, a bounded queue drops
 * the oldest alert when full, and every outcome is counted in metrics.
 */
import pRetry, { AbortError } from 'p-retry';
import type { Logger } from 'pino';
import type { WebhookConfig } from '../config/schema.ts';
import type { GuardMetrics } from './metrics.ts';
import type { Alert as AlertEvent } from '../records/avro.ts';

export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(private readonly ratePerSec: number, private readonly burst = Math.max(1, ratePerSec), private readonly clock = () => Date.now()) {
    this.tokens = this.burst;
    this.last = clock();
  }
  take(): boolean {
    const now = this.clock();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.ratePerSec);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }
}

export class AlertWebhook {
  private readonly queue: AlertEvent[] = [];
  private readonly bucket: TokenBucket;
  private running = false;
  private idle: Promise<void> = Promise.resolve();
  private readonly maxQueue = 1000;

  constructor(private readonly cfg: WebhookConfig, private readonly log: Logger, private readonly metrics: GuardMetrics) {
    this.bucket = new TokenBucket(cfg.ratePerSec);
  }

  enqueue(alerts: AlertEvent[]): void {
    for (const a of alerts) {
      if (!this.bucket.take()) {
        this.metrics.alertsWebhook.inc({ outcome: 'dropped_rate_limit' });
        continue;
      }
      if (this.queue.length >= this.maxQueue) {
        this.queue.shift();
        this.metrics.alertsWebhook.inc({ outcome: 'dropped_queue_full' });
      }
      this.queue.push(a);
    }
    if (!this.running && this.queue.length) {
      this.running = true;
      this.idle = this.pump().finally(() => (this.running = false));
    }
  }

  private async pump(): Promise<void> {
    while (this.queue.length) {
      const a = this.queue.shift()!;
      try {
        await pRetry(() => this.post(a), {
          retries: this.cfg.retries,
          minTimeout: this.cfg.backoffMs,
          factor: 2,
          randomize: false,
          onFailedAttempt: (e) => {
            // Only attempts that will be retried; the last failed one is counted as 'failed' below.
            if (e.retriesLeft > 0) this.metrics.alertsWebhook.inc({ outcome: 'retry' });
            this.log.debug({ recordId: a.id, attempt: e.attemptNumber, error: e.message }, 'webhook attempt failed');
          },
        });
        this.metrics.alertsWebhook.inc({ outcome: 'ok' });
      } catch (e) {
        this.metrics.alertsWebhook.inc({ outcome: 'failed' });
        this.log.warn({ recordId: a.id, error: (e as Error).message }, 'webhook delivery failed after retries');
      }
    }
  }

  private async post(a: AlertEvent): Promise<void> {
    let res: Response;
    try {
      res = await fetch(this.cfg.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(a),
        signal: AbortSignal.timeout(this.cfg.timeoutMs),
      });
    } catch (e) {
      throw new Error(`webhook request failed: ${(e as Error).name === 'TimeoutError' ? 'timeout' : (e as Error).message}`);
    }
    await res.arrayBuffer().catch(() => undefined);
    if (res.status >= 500 || res.status === 429) throw new Error(`webhook answered ${res.status}`);
    if (res.status >= 400) throw new AbortError(`webhook answered ${res.status} (not retried)`);
  }

  /** Waits (bounded) for queued deliveries, e.g. on shutdown. */
  async drain(timeoutMs: number): Promise<void> {
    await Promise.race([this.idle, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }
}
