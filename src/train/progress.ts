/** Progress bar for training epochs (cli-progress), quiet when not a TTY unless forced. */
import cliProgress from 'cli-progress';

export interface EpochBar {
  update(step: number, payload: Record<string, string>): void;
  stop(): void;
}

export function epochBar(label: string, total: number, enabled = process.stderr.isTTY === true): EpochBar {
  if (!enabled) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {value}/{total} ETA {eta_formatted} {metrics}`, stream: process.stderr, hideCursor: true, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { metrics: '' });
  return {
    update: (step, payload) => bar.update(step, { metrics: Object.entries(payload).map(([k, v]) => `${k}=${v}`).join(' ') }),
    stop: () => bar.stop(),
  };
}

/** Ctrl-C during training: finish the current step, keep the best checkpoint, exit cleanly. */
export function interruptFlag(): { readonly stopped: boolean; dispose(): void } {
  const state = { stopped: false };
  const onSig = () => {
    if (state.stopped) process.exit(130);
    state.stopped = true;
    process.stderr.write('\ninterrupted: finishing the current step and saving the best checkpoint (Ctrl-C again to abort)\n');
  };
  process.on('SIGINT', onSig);
  return {
    get stopped() {
      return state.stopped;
    },
    dispose: () => process.off('SIGINT', onSig),
  };
}
