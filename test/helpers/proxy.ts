/**
 * A TCP proxy on 127.0.0.1 in front of one Kafka broker, for fault and security tests.
 *
 *   const proxy = await startKafkaProxy({ host: '127.0.0.1', port: 9092 }, { delayMs: 200 });
 *   new Kafka({ brokers: proxy.brokers });   // every connection goes through the proxy
 *   proxy.setDelay(0); proxy.connections;    // live knobs and counters
 *
 * Kafka clients connect to the bootstrap address, then to the addresses the broker advertises in
 * Metadata responses. To keep every connection on the proxy, it reads the Kafka framing both ways
 * (int32 size + request header), remembers which correlation ids were Metadata requests, and in
 * their responses rewrites the advertised port of the target broker to the proxy's own port (an
 * int32, so frame sizes never change). Metadata versions 0-12 (flexible and not) are understood.
 *
 * With `delayMs`, every broker -> client frame is held back that long (in order), so every
 * response - produce acks included - arrives late: a slow downstream.
 */
import net from 'node:net';

export interface KafkaProxyOptions {
  /** Delay in ms applied to each broker -> client frame (default 0). */
  delayMs?: number;
  /** Only delay connections whose client sent a request with one of these API keys (e.g. [0] = Produce). */
  delayApiKeys?: number[];
}

export interface KafkaProxy {
  readonly port: number;
  /** Bootstrap list pointing at the proxy. */
  readonly brokers: string[];
  /** Client connections accepted so far. */
  readonly connections: number;
  /** Metadata responses rewritten so far. */
  readonly metadataRewrites: number;
  /** Request counts by API key (Produce = 0, Fetch = 1, Metadata = 3, SaslHandshake = 17, SaslAuthenticate = 36...). */
  readonly requests: Map<number, number>;
  setDelay(ms: number): void;
  /** Closes the listener and every open connection. */
  close(): Promise<void>;
}

const METADATA = 3;

/** Unsigned varint at `pos`: [value, next position]. */
function uvarint(buf: Buffer, pos: number): [number, number] {
  let v = 0;
  let shift = 0;
  for (;;) {
    const b = buf[pos++];
    if (b === undefined) throw new Error('varint past the end');
    v += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return [v, pos];
    shift += 7;
  }
}

/**
 * Rewrites, in place, the port of every advertised broker equal to `from` to `to` in a Metadata
 * response frame body (after the 4-byte size). Returns the number of ports rewritten.
 */
export function rewriteMetadataPorts(body: Buffer, version: number, from: number, to: number): number {
  const flexible = version >= 9;
  let pos = 4; // correlation id
  if (flexible) pos = skipTags(body, pos); // response header v1 tagged fields
  if (version >= 3) pos += 4; // throttle_time_ms
  let count: number;
  if (flexible) {
    let n: number;
    [n, pos] = uvarint(body, pos);
    count = n - 1;
  } else {
    count = body.readInt32BE(pos);
    pos += 4;
  }
  let rewritten = 0;
  for (let i = 0; i < count; i++) {
    pos += 4; // node_id
    pos = skipString(body, pos, flexible, false); // host
    if (body.readInt32BE(pos) === from) {
      body.writeInt32BE(to, pos);
      rewritten++;
    }
    pos += 4; // port
    if (version >= 1) pos = skipString(body, pos, flexible, true); // rack
    if (flexible) pos = skipTags(body, pos);
  }
  return rewritten;
}

function skipString(buf: Buffer, pos: number, compact: boolean, nullable: boolean): number {
  if (compact) {
    const [n, p] = uvarint(buf, pos);
    return n === 0 ? p : p + n - 1;
  }
  const len = buf.readInt16BE(pos);
  if (len < 0 && nullable) return pos + 2;
  return pos + 2 + len;
}

function skipTags(buf: Buffer, pos: number): number {
  let n: number;
  [n, pos] = uvarint(buf, pos);
  for (let i = 0; i < n; i++) {
    [, pos] = uvarint(buf, pos); // tag
    let size: number;
    [size, pos] = uvarint(buf, pos);
    pos += size;
  }
  return pos;
}

/** Splits a byte stream into Kafka frames (int32 size prefix). */
class Framer {
  private buf: Buffer = Buffer.alloc(0);
  push(chunk: Buffer): Buffer[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const frames: Buffer[] = [];
    while (this.buf.length >= 4) {
      const size = this.buf.readInt32BE(0);
      if (size < 0 || this.buf.length < 4 + size) break;
      frames.push(this.buf.subarray(0, 4 + size));
      this.buf = this.buf.subarray(4 + size);
    }
    return frames;
  }
}

export async function startKafkaProxy(target: { host: string; port: number }, opts: KafkaProxyOptions = {}): Promise<KafkaProxy> {
  let delayMs = opts.delayMs ?? 0;
  let connections = 0;
  let metadataRewrites = 0;
  const requests = new Map<number, number>();
  const sockets = new Set<net.Socket>();
  let port = 0;

  const server = net.createServer((client) => {
    connections++;
    sockets.add(client);
    const upstream = net.connect({ host: target.host, port: target.port });
    sockets.add(upstream);
    const pending = new Map<number, number>(); // correlation id -> Metadata version
    let delayThis = opts.delayApiKeys === undefined;
    let lastRelease = 0;
    const toBroker = new Framer();
    const toClient = new Framer();
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', closeBoth);
    upstream.on('error', closeBoth);
    client.on('close', closeBoth);
    upstream.on('close', () => {
      // let delayed frames reach the client before it sees the close
      setTimeout(closeBoth, delayThis ? delayMs + 5 : 0);
    });

    client.on('data', (chunk: Buffer) => {
      for (const f of toBroker.push(chunk)) {
        if (f.length >= 12) {
          const apiKey = f.readInt16BE(4);
          const version = f.readInt16BE(6);
          const correlationId = f.readInt32BE(8);
          requests.set(apiKey, (requests.get(apiKey) ?? 0) + 1);
          if (apiKey === METADATA) pending.set(correlationId, version);
          if (opts.delayApiKeys?.includes(apiKey)) delayThis = true;
        }
        upstream.write(f);
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      for (const f of toClient.push(chunk)) {
        if (f.length >= 8) {
          const correlationId = f.readInt32BE(4);
          const version = pending.get(correlationId);
          if (version !== undefined) {
            pending.delete(correlationId);
            try {
              metadataRewrites += rewriteMetadataPorts(f.subarray(4), version, target.port, port) > 0 ? 1 : 0;
            } catch {
              /* not a Metadata body after all (e.g. a raw SASL token): pass it on unchanged */
            }
          }
        }
        const wait = delayThis ? delayMs : 0;
        if (wait <= 0 && lastRelease <= Date.now()) {
          client.write(f);
        } else {
          // keep order: never release before an earlier delayed frame
          const at = Math.max(Date.now() + wait, lastRelease);
          lastRelease = at;
          const copy = Buffer.from(f);
          setTimeout(() => {
            if (!client.destroyed) client.write(copy);
          }, at - Date.now());
        }
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  port = (server.address() as net.AddressInfo).port;
  return {
    port,
    brokers: [`127.0.0.1:${port}`],
    get connections() {
      return connections;
    },
    get metadataRewrites() {
      return metadataRewrites;
    },
    requests,
    setDelay(ms: number) {
      delayMs = ms;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        sockets.clear();
        server.close(() => resolve());
      }),
  };
}
