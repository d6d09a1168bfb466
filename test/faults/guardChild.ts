/**
 * A guard in a child process with a fault injected where no signal can be aimed: it blocks its own
 * event loop (as a long GC pause or a VM freeze would) right after the membership heartbeat that
 * precedes a transaction's commit, once, on its n-th commit. The worst moment for exactly-once:
 * kafkajs's sendOffsets does not carry the group generation, so without the runner's membership
 * fence the resumed instance would commit a micro-batch its partition's new owner redoes.
 *
 *   node --import tsx test/faults/guardChild.ts <config.yaml>
 *   VQGUARD_TEST_BLOCK_AT_COMMIT=<n>:<ms>  block <ms> at the n-th commit (none when unset)
 *
 * Logs like `vqguard run` (JSON lines on stderr, "ops server listening" with the port).
 */
import { loadConfig } from '../../src/config/load.ts';
import { Guard, createLogger } from '../../src/consumer/guard.ts';

const [file] = process.argv.slice(2);
if (!file) throw new Error('usage: guardChild.ts <config>');
const log = createLogger();
const [n, ms] = (process.env.VQGUARD_TEST_BLOCK_AT_COMMIT ?? '0:0').split(':').map(Number) as [number, number];
let commits = 0;
const guard = new Guard(loadConfig(file), {
  baseDir: process.cwd(),
  logger: log,
  httpPort: 0,
  inject: {
    beforeCommit(topic, partition) {
      if (++commits !== n) return;
      log.warn({ topic, partition, blockMs: ms }, 'test: blocking the event loop before a commit');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
      log.warn({ topic, partition }, 'test: event loop unblocked');
    },
  },
});
const stop = () => guard.stop().then(() => process.exit(0), () => process.exit(1));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
await guard.start();
