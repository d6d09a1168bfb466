/** The guard's HTTP endpoints: /healthz (alive: 503 while the consumer is dead), /readyz (ready to process), /metrics. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HealthSource {
  readiness(): { ready: boolean; checks: Record<string, boolean> };
  /** /healthz: false while the process cannot work (e.g. its consumer is dead); absent = always alive. */
  liveness?(): { alive: boolean; checks: Record<string, boolean> };
  metricsText(): Promise<string>;
  metricsContentType: string;
}

export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

export function startOpsServer(src: HealthSource, port: number, host = '0.0.0.0'): Promise<OpsServer> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
      return;
    }
    if (url === '/healthz') {
      const l = src.liveness?.() ?? { alive: true, checks: {} };
      res.writeHead(l.alive ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: l.alive ? 'alive' : 'dead', checks: l.checks }) + '\n');
    } else if (url === '/readyz') {
      const r = src.readiness();
      res.writeHead(r.ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: r.ready ? 'ready' : 'not ready', checks: r.checks }) + '\n');
    } else if (url === '/metrics') {
      src.metricsText().then(
        (t) => res.writeHead(200, { 'content-type': src.metricsContentType }).end(t),
        (e: Error) => res.writeHead(500).end(e.message),
      );
    } else {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const addr = server.address() as AddressInfo;
      resolve({ port: addr.port, close: () => new Promise((r) => server.close(() => r())) });
    });
  });
}
