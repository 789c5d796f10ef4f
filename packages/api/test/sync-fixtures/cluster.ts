/**
 * Test support for scale-out tests: a round-robin HTTP proxy (a load balancer without health
 * checks) and TCP relays that stand between one node and its database, so a node can be "killed"
 * in-process the way SIGKILL kills it: its listening socket and every client socket destroyed
 * without a drain, and every database connection it holds cut (the server rolls back whatever
 * transaction was open on them).
 */
import { createServer, request } from 'node:http';
import type { Server } from 'node:http';
import { connect, createServer as createTcpServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';

export interface Hop {
  device: string | undefined;
  node: number;
  method: string;
  path: string;
  /** Upstream status, or 0 when the node did not answer (refused, reset). */
  status: number;
}

export interface RoundRobinProxy {
  server: Server;
  origin: string;
  hops: Hop[];
  /** Called when a request has been fully sent to `node` (before its reply). */
  onForwarded?: (hop: Omit<Hop, 'status'>, index: number) => void;
  close(): Promise<void>;
}

/**
 * A request carrying `x-test-device` goes to the node after the one that served that device's
 * previous request (so consecutive requests of a device never land on the same node; new devices
 * start on successive nodes); others go round robin. A node that does not answer gives 502, as a load balancer would.
 */
export function startRoundRobinProxy(ports: readonly number[]): Promise<RoundRobinProxy> {
  const last = new Map<string, number>();
  let rr = 0;
  let fresh = 0;
  let forwarded = 0;
  const proxy: RoundRobinProxy = {
    server: createServer((req, res) => {
      const device = typeof req.headers['x-test-device'] === 'string' ? req.headers['x-test-device'] : undefined;
      const prev = device === undefined ? undefined : last.get(device);
      const node = device === undefined ? rr++ % ports.length : prev === undefined ? fresh++ % ports.length : (prev + 1) % ports.length;
      if (device !== undefined) last.set(device, node);
      const hop = { device, node, method: req.method ?? '', path: (req.url ?? '').split('?')[0] ?? '' };
      const up = request({ host: '127.0.0.1', port: ports[node], method: req.method, path: req.url, headers: req.headers }, (r) => {
        proxy.hops.push({ ...hop, status: r.statusCode ?? 0 });
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
        r.on('error', () => res.destroy());
        r.on('aborted', () => res.destroy());
      });
      up.on('finish', () => proxy.onForwarded?.(hop, forwarded++));
      up.on('error', (e) => {
        if (res.headersSent) {
          res.destroy();
          return;
        }
        proxy.hops.push({ ...hop, status: 0 });
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`bad gateway: ${String(e)}`);
      });
      req.pipe(up);
    }),
    origin: '',
    hops: [],
    close: () => new Promise<void>((ok) => {
      proxy.server.closeAllConnections();
      proxy.server.close(() => ok());
    }),
  };
  return new Promise((resolve) => proxy.server.listen(0, '127.0.0.1', () => {
    proxy.origin = `http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}`;
    resolve(proxy);
  }));
}

export interface TcpRelay {
  port: number;
  /** Connections relayed so far. */
  connections: number;
  /** Destroys every relayed connection at once (both sides), as the death of the client process would. */
  cut(): void;
  close(): Promise<void>;
}

/** A loopback TCP relay to `host:port`. */
export function startTcpRelay(host: string, port: number): Promise<TcpRelay> {
  const open = new Set<Socket>();
  const server = createTcpServer((client) => {
    relay.connections++;
    const upstream = connect(port, host);
    open.add(client).add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const relay: TcpRelay = {
    port: 0,
    connections: 0,
    cut() {
      for (const s of open) s.destroy();
      open.clear();
    },
    close() {
      relay.cut();
      return new Promise<void>((ok) => server.close(() => ok()));
    },
  };
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    relay.port = (server.address() as AddressInfo).port;
    resolve(relay);
  }));
}

export interface SessionGate {
  port: number;
  close(): Promise<void>;
}

/**
 * A loopback TCP gate in front of a single-session PostgreSQL server (embedded PGlite over the
 * wire protocol): several client connections share one backend session there, so their
 * extended-protocol messages (Parse/Bind/Execute on the unnamed statement) and their
 * transactions must not interleave. The gate lets one connection talk at a time: a connection
 * that sends takes the gate and keeps it until the server reports ReadyForQuery *idle* ('Z' 'I')
 * with nothing more from that client, or until it closes (the server then rolls its transaction
 * back). Others' bytes wait in order. Clients must not ask for SSL (sslmode=disable).
 */
export function startSessionGate(host: string, port: number): Promise<SessionGate> {
  type Conn = { client: Socket; upstream: Socket; pending: Buffer[]; sent: number; frames: Buffer; closed: boolean };
  let holder: Conn | undefined;
  const waiting: Conn[] = [];
  const all = new Set<Conn>();
  const grant = (): void => {
    while (holder === undefined) {
      const next = waiting.shift();
      if (next === undefined) return;
      if (next.closed || next.pending.length === 0) continue;
      holder = next;
      for (const b of next.pending.splice(0)) next.upstream.write(b);
    }
  };
  const release = (c: Conn): void => {
    if (holder !== c) return;
    holder = undefined;
    if (c.pending.length > 0 && !c.closed) waiting.push(c);
    grant();
  };
  const server = createTcpServer((client) => {
    const upstream = connect(port, host);
    const c: Conn = { client, upstream, pending: [], sent: 0, frames: Buffer.alloc(0), closed: false };
    all.add(c);
    const drop = (): void => {
      if (c.closed) return;
      c.closed = true;
      all.delete(c);
      client.destroy();
      upstream.destroy();
      const i = waiting.indexOf(c);
      if (i >= 0) waiting.splice(i, 1);
      release(c);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.on('data', (b: Buffer) => {
      if (holder === c) {
        upstream.write(b);
        return;
      }
      c.pending.push(b);
      if (!waiting.includes(c)) waiting.push(c);
      grant();
    });
    upstream.on('data', (b: Buffer) => {
      client.write(b);
      // Server → client frames: type (1), length (4, counts itself), body.
      c.frames = c.frames.length === 0 ? b : Buffer.concat([c.frames, b]);
      let idle = false;
      while (c.frames.length >= 5) {
        const len = c.frames.readUInt32BE(1);
        if (c.frames.length < 1 + len) break;
        if (c.frames[0] === 0x5a) idle = c.frames[5] === 0x49; // 'Z', status 'I'
        c.frames = c.frames.subarray(1 + len);
      }
      if (idle && c.frames.length === 0) release(c);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    resolve({
      port: (server.address() as AddressInfo).port,
      close: () => new Promise<void>((ok) => {
        for (const c of all) {
          c.client.destroy();
          c.upstream.destroy();
        }
        server.close(() => ok());
      }),
    });
  }));
}
