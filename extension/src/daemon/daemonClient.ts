/**
 * The extension's connection to the daemon: one WebSocket (`ws`, so the extension host can send the
 * `Authorization: Bearer` header), typed JSON-RPC requests, schema-checked events, and automatic reconnection
 * with back-off that resumes events with `events/replay` after the last seen `seq`.
 * Free of `vscode` imports so it is unit-tested against a real WebSocket server.
 */
import WebSocket from 'ws';
import type { DaemonEvent, MethodName, ParamsOf, ResultOf } from '@mathagent/shared';

export type DaemonInfo = ResultOf<'daemon/info'>;
import { Limits } from '@mathagent/shared';
import { Emitter } from '../util/emitter';
import { DaemonRpcError, encodeNotification, encodeRequest, parseIncoming, validateResult } from './jsonRpc';
import { Backoff, EventSequencer } from './sequencer';

export type ConnectionState = 'disconnected' | 'connecting' | 'connected';

export interface DaemonClientOptions {
  url: string;
  /** Read before every attempt, so a token file rewritten by a restarted daemon is picked up. */
  token: () => Promise<string | undefined>;
  log?: (line: string) => void;
  backoff?: Backoff;
  requestTimeoutMs?: number;
  /** How long to wait for the `connected` hello after the socket opens. */
  helloTimeoutMs?: number;
  /** Page size for `events/replay`. */
  replayPageSize?: number;
}

interface Pending { method: MethodName; resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }

export class DaemonClient {
  private ws: WebSocket | undefined;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private everConnected = false;
  private disposed = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private helloTimer: NodeJS.Timeout | undefined;
  private readonly backoff: Backoff;
  readonly sequencer = new EventSequencer();
  state: ConnectionState = 'disconnected';
  info: DaemonInfo | undefined;
  lastError: string | undefined;

  private readonly stateEmitter = new Emitter<ConnectionState>();
  private readonly eventEmitter = new Emitter<DaemonEvent>();
  private readonly resetEmitter = new Emitter<void>();
  private readonly lspEmitter = new Emitter<Record<string, unknown>>();
  private readonly connectedEmitter = new Emitter<DaemonInfo>();
  readonly onState = this.stateEmitter.event;
  /** Every event exactly once, in seq order (live, or replayed after a reconnect). */
  readonly onEvent = this.eventEmitter.event;
  /** The daemon's event counter went backwards (another daemon / wiped store): views must refetch everything. */
  readonly onReset = this.resetEmitter.event;
  readonly onLspMessage = this.lspEmitter.event;
  /** Fired on every (re)connection once `daemon/info` answered. */
  readonly onConnected = this.connectedEmitter.event;

  constructor(private readonly opts: DaemonClientOptions) {
    this.backoff = opts.backoff ?? new Backoff();
  }

  get url(): string { return this.opts.url; }

  private log(line: string): void { this.opts.log?.(line); }

  /**
   * Open the connection. Resolves once the daemon said hello and answered `daemon/info`; rejects with a
   * message a person can act on if this first attempt fails. After one success, losses reconnect by themselves.
   */
  connect(): Promise<DaemonInfo> {
    if (this.disposed) return Promise.reject(new Error('daemon client was disposed'));
    return new Promise((resolve, reject) => {
      const sub = this.connectedEmitter.event((info) => { sub.dispose(); fail.dispose(); resolve(info); });
      const fail = this.stateEmitter.event((s) => {
        if (s === 'disconnected' && !this.everConnected) { sub.dispose(); fail.dispose(); reject(new Error(this.lastError ?? 'could not connect')); }
      });
      void this.open();
    });
  }

  private setState(s: ConnectionState): void {
    if (this.state === s) return;
    this.state = s;
    this.stateEmitter.fire(s, (e) => this.log(`state listener failed: ${String(e)}`));
  }

  private async open(): Promise<void> {
    if (this.disposed || this.ws) return;
    this.setState('connecting');
    let token: string | undefined;
    try { token = await this.opts.token(); } catch (e) { token = undefined; this.log(`could not read the daemon token: ${(e as Error).message}`); }
    if (this.disposed) return;
    const headers: Record<string, string> = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.opts.url, { headers, maxPayload: Limits.maxMessageBytes * 64, handshakeTimeout: 10_000 });
    } catch (e) {
      this.lastError = `bad daemon URL ${this.opts.url}: ${(e as Error).message} (setting mathagent.daemonUrl)`;
      this.closed();
      return;
    }
    this.ws = ws;
    let refused = false;
    ws.on('unexpected-response', (_req, res) => {
      refused = true;
      this.lastError = res.statusCode === 401 || res.statusCode === 403
        ? `the daemon at ${this.opts.url} refused the token (HTTP ${res.statusCode}): check mathagent.tokenFile or run "MathAgent: Connect to Daemon" to enter it`
        : `the daemon at ${this.opts.url} answered HTTP ${res.statusCode} instead of a WebSocket upgrade`;
      res.resume();
      ws.terminate();
    });
    ws.on('error', (err) => {
      const code = (err as NodeJS.ErrnoException).code;
      if (!refused && this.state !== 'connected') {
        this.lastError = code === 'ECONNREFUSED'
          ? `no daemon answers at ${this.opts.url} (start one with "MathAgent: Start Local Daemon" or \`mathagent daemon\`)`
          : `connection to ${this.opts.url} failed: ${err.message}`;
      }
      this.log(`socket error: ${err.message}`);
    });
    ws.on('open', () => {
      this.lastError = undefined;
      // The daemon speaks first (`connected`); without it this is not a MathAgent daemon.
      this.helloTimer = setTimeout(() => {
        this.lastError = `${this.opts.url} opened a WebSocket but sent no "connected" hello: is it a MathAgent daemon?`;
        ws.close();
      }, this.opts.helloTimeoutMs ?? 10_000);
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) { this.log('dropped a binary frame from the daemon'); return; }
      this.handle(data.toString());
    });
    ws.on('close', () => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      this.closed();
    });
  }

  private closed(): void {
    clearTimeout(this.helloTimer);
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error(`${p.method}: connection to the daemon was lost`));
      this.pending.delete(id);
    }
    if (this.sequencer.isReplaying) for (const ev of this.sequencer.abortReplay()) this.deliver(ev);
    this.setState('disconnected');
    if (this.disposed || !this.everConnected) return;
    const delay = this.backoff.next();
    this.log(`disconnected (${this.lastError ?? 'closed'}); reconnecting in ${delay} ms`);
    this.reconnectTimer = setTimeout(() => { this.reconnectTimer = undefined; void this.open(); }, delay);
  }

  private handle(raw: string): void {
    const msg = parseIncoming(raw);
    switch (msg.kind) {
      case 'invalid': this.log(`dropped a malformed message from the daemon: ${msg.reason}`); return;
      case 'connected': void this.onHello(msg.hello.lastSeq, msg.hello.protocolVersion); return;
      case 'event': for (const ev of this.sequencer.live(msg.event)) this.deliver(ev); return;
      case 'lsp': this.lspEmitter.fire(msg.message, (e) => this.log(`lsp listener failed: ${String(e)}`)); return;
      case 'notification': this.log(`ignored notification ${msg.method}`); return;
      case 'response':
      case 'error': {
        const p = typeof msg.id === 'number' ? this.pending.get(msg.id) : undefined;
        if (!p) { this.log(`dropped a response for unknown id ${String(msg.id)}`); return; }
        this.pending.delete(msg.id as number);
        clearTimeout(p.timer);
        if (msg.kind === 'error') { p.reject(new DaemonRpcError(p.method, msg.error.code, msg.error.message, msg.error.data)); return; }
        try { p.resolve(validateResult(p.method, msg.result)); } catch (e) { p.reject(e as Error); }
      }
    }
  }

  private deliver(ev: DaemonEvent): void {
    this.eventEmitter.fire(ev, (e) => this.log(`event listener failed on ${ev.type}: ${String(e)}`));
  }

  private async onHello(daemonLastSeq: number, protocolVersion: number): Promise<void> {
    clearTimeout(this.helloTimer);
    if (protocolVersion !== 1) this.log(`daemon speaks protocol ${protocolVersion}, the extension ${1}: some views may fail`);
    const reconnecting = this.everConnected;
    let action: 'replay' | 'reset' | 'upToDate' | 'fresh' = 'fresh';
    if (reconnecting) action = this.sequencer.reconnect(daemonLastSeq);
    else this.sequencer.start(daemonLastSeq);
    try {
      this.info = await this.request('daemon/info', {});
    } catch (e) {
      this.lastError = `daemon/info failed: ${(e as Error).message}`;
      this.ws?.close();
      return;
    }
    this.everConnected = true;
    this.backoff.reset();
    this.setState('connected');
    this.connectedEmitter.fire(this.info, (e) => this.log(`connected listener failed: ${String(e)}`));
    if (action === 'reset') this.resetEmitter.fire(undefined);
    if (action === 'replay') await this.replay();
  }

  private async replay(): Promise<void> {
    const limit = this.opts.replayPageSize ?? 10_000;
    try {
      for (;;) {
        const r = await this.request('events/replay', { afterSeq: this.sequencer.lastSeq, limit });
        const more = r.events.length >= limit;
        for (const ev of this.sequencer.replayed(r.events, more)) this.deliver(ev);
        if (!more) break;
      }
      this.log(`resumed events up to seq ${this.sequencer.lastSeq}`);
    } catch (e) {
      this.log(`events/replay failed (${(e as Error).message}); views refetch instead`);
      for (const ev of this.sequencer.abortReplay()) this.deliver(ev);
      this.resetEmitter.fire(undefined);
    }
  }

  /** A typed request; params and result are schema-checked. Rejects with DaemonRpcError on a daemon error. */
  request<M extends MethodName>(method: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error(`not connected to the daemon (${this.lastError ?? 'run "MathAgent: Connect to Daemon"'})`));
    }
    const id = this.nextId++;
    let frame: string;
    try { frame = encodeRequest(id, method, params); } catch (e) { return Promise.reject(e as Error); }
    return new Promise<ResultOf<M>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method}: the daemon did not answer within ${(this.opts.requestTimeoutMs ?? 60_000) / 1000} s`));
      }, this.opts.requestTimeoutMs ?? 60_000);
      this.pending.set(id, { method, resolve: resolve as (v: unknown) => void, reject, timer });
      ws.send(frame, (err) => {
        if (!err) return;
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new Error(`${method}: send failed: ${err.message}`));
      });
    });
  }

  /** Fire-and-forget notification (used for `lsp/message`). Returns false when not connected. */
  notify(method: string, params: unknown): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(encodeNotification(method, params));
    return true;
  }

  /** Drop the socket now (tests, and "Connect" to another URL). Reconnects unless disposed. */
  dropConnection(): void { this.ws?.terminate(); }

  dispose(): void {
    this.disposed = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.helloTimer);
    const ws = this.ws;
    this.ws = undefined;
    ws?.terminate();
    this.closed();
    for (const e of [this.stateEmitter, this.eventEmitter, this.resetEmitter, this.lspEmitter, this.connectedEmitter]) (e as Emitter<unknown>).dispose();
  }
}
