/**
 * The daemon's WebSocket JSON-RPC 2.0 server.
 *
 * - Auth at the HTTP upgrade: `Authorization: Bearer <token>` (401 otherwise) and no `Origin` header (403): a
 *   browser page always sends an Origin, the VS Code extension host (Node) never does. The token is not accepted
 *   in the query string: every legitimate client can set headers, and URLs end up in logs and shell history.
 * - Each connection: first a `connected` notification, then live `event` notifications; requests are answered
 *   per the `Methods` table in @mathagent/shared with zod-checked params. Any bad message gets a JSON-RPC error
 *   and the connection stays usable; an oversized one closes the connection with 1009 (ws `maxPayload`).
 * - Back-pressure: events are serialised once and queued on every socket; a client whose unsent bytes exceed
 *   `maxQueuedBytes` is closed with CloseCodes.SlowConsumer (it reconnects and replays by seq), so the training
 *   loop never waits for a socket and memory stays bounded.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, WebSocket, type RawData } from 'ws';
import type { z } from 'zod';
import {
  CloseCodes,
  ErrorCodes,
  Limits,
  Methods,
  Notifications,
  PROTOCOL_VERSION,
  type DaemonEvent,
  type MethodName,
  type ResultOf,
  type RunStartParams,
} from '@mathagent/shared';
import type { Store } from '../store';
import { NotFoundError } from '../store/errors';
import { RunDeleteRefused } from '../pipeline/deleteRuns';
import { VERSION } from '../version';
import type { EventBus } from './eventBus';
import { TokenBucket } from './rateLimit';
import { bearerToken, defaultTokenFile, ensureToken, tokensEqual } from './token';
import { Envelope, RpcError, errorResponse, invalidParams, notification, resultResponse, toRpcError, RequestId } from './rpc';

/** What the server needs from the pipeline (the lead's run manager implements it). */
export interface RunController {
  start(p: z.infer<typeof RunStartParams>): Promise<{ runId: string }>;
  stop(runId: string): Promise<boolean>;
  resume(runId: string): Promise<boolean>;
  /** Delete a run (`run/delete`); throws RunDeleteRefused to decline. Absent: the method answers MethodNotFound. */
  delete?(runId: string, force: boolean): Promise<boolean> | boolean;
  /** Token texts for the token view of `trajectory/get` (null or absent: the view shows ids only). */
  decodeTokens?(runId: string, tokenIds: number[]): Promise<string[] | null> | string[] | null;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type Logger = (level: LogLevel, message: string) => void;

export interface ServerOptions {
  /** Default 127.0.0.1. Anything else exposes the daemon to the network (the token still guards it). */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  /** Default `<configDir>/daemon.token`. */
  tokenFile?: string;
  store: Store;
  bus: EventBus;
  controller: RunController;
  info: () => Partial<ResultOf<'daemon/info'>>;
  log?: Logger;
  /** Unsent bytes a client may have queued before it is closed as a slow consumer. Default 8 MiB. */
  maxQueuedBytes?: number;
  /** Token bucket per client. Default Limits.maxRequestsPerSecond for both. */
  rateLimit?: { capacity: number; perSecond: number };
  /** How long a closed slow consumer gets to read its close frame before its socket is destroyed. Default 5 s. */
  slowCloseGraceMs?: number;
  /** Ping interval; a client that missed the previous pong is dropped. Default 30 s; 0 disables. */
  heartbeatMs?: number;
}

/** One connected client, as notification handlers (e.g. the language server) see it. */
export interface ClientConnection {
  readonly id: number;
  readonly remoteAddress: string;
  /** Sends a notification to this client (dropped if the connection is closing). */
  notify(method: string, params: unknown): void;
  close(code?: number, reason?: string): void;
}

export interface ClientStats {
  id: number;
  bufferedAmount: number;
  /** The most unsent bytes this client ever had queued. */
  maxBufferedAmount: number;
  slow: boolean;
}

export interface DaemonServer {
  url: string;
  port: number;
  host: string;
  tokenFile: string;
  close(): Promise<void>;
  /** Routes client notifications of `method` (e.g. Notifications.lsp = `lsp/message`) to `handler`. */
  onNotification(method: string, handler: (client: ClientConnection, params: unknown) => void): () => void;
  onClientClose(fn: (client: ClientConnection) => void): () => void;
  clients(): ClientConnection[];
  stats(): ClientStats[];
}

type Handler<M extends MethodName> = (params: z.output<(typeof Methods)[M]['params']>, client: ClientConnection) => ResultOf<M> | Promise<ResultOf<M>>;
type Handlers = { [M in MethodName]: Handler<M> };

const defaultLog: Logger = (level, message) => {
  if (level === 'warn' || level === 'error') process.stderr.write(`mathagent daemon [${level}] ${message}\n`);
};

class Client implements ClientConnection {
  readonly bucket: TokenBucket;
  maxBufferedAmount = 0;
  slow = false;
  alive = true;

  constructor(
    readonly id: number,
    readonly ws: WebSocket,
    readonly remoteAddress: string,
    rate: { capacity: number; perSecond: number },
    private readonly maxQueuedBytes: number,
    private readonly onSlow: (c: Client) => void,
  ) {
    this.bucket = new TokenBucket(rate.capacity, rate.perSecond);
  }

  /** Queues a frame unless the client is already too far behind; never waits. */
  send(frame: string): void {
    if (this.slow || this.ws.readyState !== WebSocket.OPEN) return;
    const queued = this.ws.bufferedAmount;
    if (queued > this.maxQueuedBytes) {
      this.onSlow(this);
      return;
    }
    this.ws.send(frame);
    const after = this.ws.bufferedAmount;
    if (after > this.maxBufferedAmount) this.maxBufferedAmount = after;
  }

  notify(method: string, params: unknown): void {
    this.send(notification(method, params));
  }

  close(code: number = CloseCodes.Normal, reason = ''): void {
    this.ws.close(code, reason);
  }
}

export async function startServer(opts: ServerOptions): Promise<DaemonServer> {
  const host = opts.host ?? '127.0.0.1';
  const tokenFile = opts.tokenFile ?? defaultTokenFile();
  const token = ensureToken(tokenFile);
  const log = opts.log ?? defaultLog;
  const { store, bus, controller } = opts;
  const maxQueuedBytes = opts.maxQueuedBytes ?? 8 << 20;
  const rate = opts.rateLimit ?? { capacity: Limits.maxRequestsPerSecond, perSecond: Limits.maxRequestsPerSecond };
  const graceMs = opts.slowCloseGraceMs ?? 5000;

  const clients = new Set<Client>();
  const notificationHandlers = new Map<string, Set<(c: ClientConnection, p: unknown) => void>>();
  const closeHandlers = new Set<(c: ClientConnection) => void>();
  let nextClientId = 1;

  const requireRun = (runId: string) => {
    if (!store.getRunSummary(runId)) throw new NotFoundError('run', runId);
  };

  const handlers: Handlers = {
    'daemon/info': () => ({
      protocolVersion: PROTOCOL_VERSION,
      version: VERSION,
      backend: 'unknown',
      backendsAvailable: [],
      presets: [],
      datasets: [],
      ...opts.info(),
      lastSeq: bus.lastSeq,
    }),
    'run/start': (p) => controller.start(p),
    'run/stop': async (p) => {
      requireRun(p.runId);
      return { stopped: await controller.stop(p.runId) };
    },
    'run/resume': async (p) => {
      requireRun(p.runId);
      return { resumed: await controller.resume(p.runId) };
    },
    'run/delete': async (p) => {
      requireRun(p.runId);
      if (!controller.delete) throw new RpcError(ErrorCodes.MethodNotFound, 'this daemon does not delete runs');
      try {
        const deleted = await controller.delete(p.runId, p.force);
        if (deleted) bus.emit({ type: 'run/deleted', runId: p.runId });
        return { deleted };
      } catch (e) {
        if (e instanceof RunDeleteRefused) throw new RpcError(ErrorCodes.RequestFailed, e.message);
        throw e;
      }
    },
    'run/list': (p) => ({ runs: store.listRuns({ limit: p.limit }) }),
    'run/get': (p) => {
      const r = store.getRun(p.runId);
      if (!r) throw new NotFoundError('run', p.runId);
      // The per-problem list stays in the store: the panels read trajectories, not 500-row arrays per iteration.
      const evals = store.listEvals(p.runId).map(({ iteration, pass1, ci95, passK, k, n, meanTurns, toolErrorRate, breakdown }) =>
        ({ iteration, pass1, ci95, passK, k, n, meanTurns, toolErrorRate, breakdown }));
      return { run: r.run, config: r.config, iterations: store.listIterations(p.runId), evals };
    },
    'trajectory/list': (p) => {
      requireRun(p.runId);
      return store.listTrajectoryHeaders(p);
    },
    'trajectory/get': async (p) => {
      const trajectory = store.getTrajectory(p.trajectoryId);
      if (!trajectory) throw new NotFoundError('trajectory', p.trajectoryId);
      const tokenTexts = p.withTokens && controller.decodeTokens ? (await controller.decodeTokens(trajectory.runId, trajectory.tokenIds)) ?? null : null;
      return { trajectory, annotation: store.getAnnotation(p.trajectoryId), tokenTexts, turnRewards: store.getTurnRewards(p.trajectoryId) };
    },
    'pair/list': (p) => {
      requireRun(p.runId);
      return { pairs: store.listPairs(p.runId, p.iteration) };
    },
    'compare/iterations': (p) => {
      requireRun(p.a.runId);
      requireRun(p.b.runId);
      return store.compare(p.a, p.b);
    },
    'annotation/set': (p) => {
      const annotation = store.setAnnotation(p);
      const runId = store.annotationRunId(annotation.trajectoryId) ?? '';
      bus.emit({ type: 'annotation/changed', runId, annotation });
      return { annotation };
    },
    'annotation/list': (p) => ({ annotations: store.listAnnotations(p.runId) }),
    'metrics/get': (p) => {
      requireRun(p.runId);
      return { points: store.getMetrics(p.runId, p.names) };
    },
    'events/replay': (p) => {
      const events = bus.replay(p.afterSeq, p.runId, p.limit);
      return { events, lastSeq: bus.lastSeq };
    },
  };

  async function handleRequest(env: Envelope, client: Client): Promise<string | null> {
    const isRequest = env.id !== undefined;
    const id: RequestId = env.id ?? null;
    if (!isRequest) {
      const hs = notificationHandlers.get(env.method);
      if (!hs || hs.size === 0) {
        log('debug', `client #${client.id}: no handler for notification ${env.method}`);
        return null;
      }
      for (const h of hs) {
        try {
          h(client, env.params);
        } catch (err) {
          log('error', `notification handler for ${env.method} failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
        }
      }
      return null;
    }
    if (!Object.hasOwn(Methods, env.method)) {
      return errorResponse(id, { code: ErrorCodes.MethodNotFound, message: `unknown method '${env.method}'; known methods: ${Object.keys(Methods).join(', ')}` });
    }
    const method = env.method as MethodName;
    const parsed = Methods[method].params.safeParse(env.params);
    if (!parsed.success) {
      const e = invalidParams(method, parsed.error);
      return errorResponse(id, { code: e.code, message: e.message, data: e.data });
    }
    try {
      const handler = handlers[method] as Handler<MethodName>;
      const result = await handler(parsed.data as never, client);
      return resultResponse(id, result);
    } catch (err) {
      const e = toRpcError(err);
      if (e.code === ErrorCodes.InternalError) log('error', `${method} failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
      return errorResponse(id, e);
    }
  }

  /** One element of a message (a single message, or one member of a batch). */
  async function handleOne(raw: unknown, client: Client): Promise<string | null> {
    const rawId = typeof raw === 'object' && raw !== null && 'id' in raw ? (raw as { id: unknown }).id : undefined;
    const idOk = RequestId.safeParse(rawId);
    const id: RequestId = idOk.success ? idOk.data : null;
    if (!client.bucket.take()) {
      return rawId === undefined ? null : errorResponse(id, { code: ErrorCodes.RateLimited, message: `rate limit: at most ${rate.perSecond} messages per second; retry later` });
    }
    const env = Envelope.safeParse(raw);
    if (!env.success) {
      // A response from the client (we never send requests) is not an error worth answering.
      if (typeof raw === 'object' && raw !== null && !('method' in raw) && ('result' in raw || 'error' in raw)) return null;
      return errorResponse(id, { code: ErrorCodes.InvalidRequest, message: `invalid JSON-RPC 2.0 message: ${env.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}` });
    }
    return handleRequest(env.data, client);
  }

  async function onMessage(client: Client, data: RawData, isBinary: boolean): Promise<void> {
    if (isBinary) {
      if (client.bucket.take()) client.send(errorResponse(null, { code: ErrorCodes.InvalidRequest, message: 'binary frames are not supported: send JSON-RPC as text frames' }));
      return;
    }
    let msg: unknown;
    try {
      msg = JSON.parse(Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8'));
    } catch (err) {
      // Counted against the rate limit too, so a flood of garbage cannot buy unlimited error answers.
      if (client.bucket.take()) client.send(errorResponse(null, { code: ErrorCodes.ParseError, message: `malformed JSON: ${(err as Error).message}` }));
      return;
    }
    if (Array.isArray(msg)) {
      if (msg.length === 0) {
        client.send(errorResponse(null, { code: ErrorCodes.InvalidRequest, message: 'empty batch' }));
        return;
      }
      const out = (await Promise.all(msg.map((m) => handleOne(m, client)))).filter((r): r is string => r !== null);
      if (out.length) client.send(`[${out.join(',')}]`);
      return;
    }
    const out = await handleOne(msg, client);
    if (out !== null) client.send(out);
  }

  const markSlow = (c: Client) => {
    if (c.slow) return;
    c.slow = true;
    log('warn', `client #${c.id} is too slow (${c.ws.bufferedAmount} bytes unsent); closing it: it will reconnect and replay`);
    c.ws.close(CloseCodes.SlowConsumer, 'slow consumer: reconnect and call events/replay after your last seq');
    setTimeout(() => c.ws.terminate(), graceMs).unref();
  };

  const unsubscribe = bus.subscribe((e: DaemonEvent) => {
    if (clients.size === 0) return;
    const frame = notification(Notifications.event, e);
    for (const c of clients) c.send(frame);
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: Limits.maxMessageBytes, perMessageDeflate: false, clientTracking: false });
  wss.on('error', (err) => log('error', `websocket server: ${err.message}`));

  wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
    const client = new Client(nextClientId++, ws, `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`, rate, maxQueuedBytes, markSlow);
    ws.on('error', (err) => log('warn', `client #${client.id}: ${err.message}`));
    ws.on('pong', () => {
      client.alive = true;
    });
    ws.on('message', (data, isBinary) => {
      onMessage(client, data, isBinary).catch((err: unknown) => log('error', `client #${client.id}: ${err instanceof Error ? err.stack ?? err.message : String(err)}`));
    });
    ws.on('close', (code) => {
      clients.delete(client);
      log('info', `client #${client.id} disconnected (${code})`);
      for (const fn of closeHandlers) {
        try {
          fn(client);
        } catch (err) {
          log('error', `client close handler failed: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    });
    // `connected` first, then the live stream: lastSeq here and the first live event leave no gap.
    client.send(notification(Notifications.connected, { protocolVersion: PROTOCOL_VERSION, version: VERSION, lastSeq: bus.lastSeq }));
    clients.add(client);
    log('info', `client #${client.id} connected from ${client.remoteAddress}`);
  });

  const refuse = (socket: Duplex, status: number, text: string, message: string) => {
    log('warn', `refused a connection: ${status} ${message}`);
    const body = `${message}\n`;
    socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    socket.once('finish', () => socket.destroy());
  };

  const http = createServer((_req, res) => {
    res.writeHead(426, { 'Content-Type': 'text/plain; charset=utf-8', Upgrade: 'websocket' });
    res.end('this is the MathAgent daemon: connect with a WebSocket client (JSON-RPC 2.0)\n');
  });
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', (err) => log('debug', `upgrade socket: ${err.message}`));
    if (req.headers.origin !== undefined) {
      refuse(socket, 403, 'Forbidden', `browser origin ${JSON.stringify(req.headers.origin)} refused: only local tools (the VS Code extension host, the CLI) may connect`);
      return;
    }
    const given = bearerToken(req.headers.authorization);
    if (given === null || !tokensEqual(given, token)) {
      refuse(socket, 401, 'Unauthorized', `${given === null ? 'missing' : 'wrong'} token: send "Authorization: Bearer <token>" with the token from ${tokenFile}`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  http.on('clientError', (err, socket) => {
    log('debug', `http client error: ${err.message}`);
    socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    const onErr = (err: NodeJS.ErrnoException) => {
      reject(new Error(err.code === 'EADDRINUSE' ? `port ${opts.port ?? 0} on ${host} is already in use: pick another with --port (0 = any free port)` : `cannot listen on ${host}:${opts.port ?? 0}: ${err.message}`));
    };
    http.once('error', onErr);
    http.listen(opts.port ?? 0, host, () => {
      http.off('error', onErr);
      http.on('error', (err) => log('error', `http server: ${err.message}`));
      resolve();
    });
  });
  const port = (http.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;

  const heartbeatMs = opts.heartbeatMs ?? 30_000;
  const heartbeat = heartbeatMs > 0
    ? setInterval(() => {
      for (const c of clients) {
        if (!c.alive) {
          log('warn', `client #${c.id} missed a heartbeat; dropping it`);
          c.ws.terminate();
          continue;
        }
        c.alive = false;
        try {
          c.ws.ping();
        } catch {
          /* closing already */
        }
      }
    }, heartbeatMs).unref()
    : null;

  let closing: Promise<void> | null = null;
  return {
    url: `ws://${urlHost}:${port}`,
    port,
    host,
    tokenFile,
    onNotification(method, handler) {
      let hs = notificationHandlers.get(method);
      if (!hs) notificationHandlers.set(method, (hs = new Set()));
      hs.add(handler);
      return () => {
        hs!.delete(handler);
      };
    },
    onClientClose(fn) {
      closeHandlers.add(fn);
      return () => {
        closeHandlers.delete(fn);
      };
    },
    clients: () => [...clients],
    stats: () => [...clients].map((c) => ({ id: c.id, bufferedAmount: c.ws.bufferedAmount, maxBufferedAmount: c.maxBufferedAmount, slow: c.slow })),
    close() {
      closing ??= (async () => {
        unsubscribe();
        if (heartbeat) clearInterval(heartbeat);
        const waits = [...clients].map((c) => new Promise<void>((resolve) => {
          if (c.ws.readyState === WebSocket.CLOSED) return resolve();
          c.ws.once('close', () => resolve());
          c.ws.close(CloseCodes.GoingAway, 'daemon shutting down');
          setTimeout(() => c.ws.terminate(), 1000).unref();
        }));
        await Promise.all(waits);
        wss.close();
        await new Promise<void>((resolve) => {
          http.close(() => resolve());
          http.closeAllConnections();
        });
      })();
      return closing;
    },
  };
}

export { RpcError };
