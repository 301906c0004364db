/**
 * A small typed client for the daemon (CLI, tests, and the extension host, which is Node too). One WebSocket,
 * JSON-RPC 2.0, the `Methods` table for types. Resolves once the daemon's `connected` hello arrives.
 */
import { readFileSync } from 'node:fs';
import { WebSocket } from 'ws';
import {
  Notifications,
  type ConnectedNotification,
  type DaemonEvent,
  type MethodName,
  type ParamsOf,
  type ResultOf,
} from '@mathagent/shared';
import type { z } from 'zod';

export type Connected = z.infer<typeof ConnectedNotification>;

/** A JSON-RPC error answer: `code` is one of ErrorCodes. */
export class RpcClientError extends Error {
  override readonly name = 'RpcClientError';
  constructor(readonly code: number, message: string, readonly data?: unknown) {
    super(message);
  }
}

export interface DaemonClient {
  /** The daemon's hello: protocol version, daemon version and its last event seq at connect time. */
  readonly connected: Connected;
  request<M extends MethodName>(method: M, params: ParamsOf<M>): Promise<ResultOf<M>>;
  /** Sends a notification (e.g. `lsp/message`). */
  notify(method: string, params: unknown): void;
  onEvent(fn: (e: DaemonEvent) => void): () => void;
  onNotification(method: string, fn: (params: unknown) => void): () => void;
  /** Called once when the connection closes (code 4008 = slow consumer: reconnect and replay). */
  onClose(fn: (code: number, reason: string) => void): () => void;
  readonly isOpen: boolean;
  close(): Promise<void>;
}

export interface ConnectOptions {
  /** Give up connecting after this long (default 10 s). */
  timeoutMs?: number;
  /** Reject a request that got no answer after this long (default: never). */
  requestTimeoutMs?: number;
}

/** Reads a token file written by the daemon. */
export function readTokenFile(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new Error(`cannot read the daemon token from ${path}: ${(err as Error).message} (start the daemon first, or pass --token-file)`);
  }
}

export function connectClient(url: string, token: string, opts: ConnectOptions = {}): Promise<DaemonClient> {
  const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${token}` }, perMessageDeflate: false });
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer?: NodeJS.Timeout }>();
  const eventFns = new Set<(e: DaemonEvent) => void>();
  const notifFns = new Map<string, Set<(p: unknown) => void>>();
  const closeFns = new Set<(code: number, reason: string) => void>();
  let nextId = 1;
  let hello: Connected | null = null;
  let closedInfo: { code: number; reason: string } | null = null;

  const dispatch = (msg: { id?: unknown; method?: unknown; params?: unknown; result?: unknown; error?: { code: number; message: string; data?: unknown } }) => {
    if (typeof msg.method === 'string') {
      if (msg.method === Notifications.event) for (const fn of eventFns) fn(msg.params as DaemonEvent);
      for (const fn of notifFns.get(msg.method) ?? []) fn(msg.params);
      return;
    }
    if (typeof msg.id !== 'number') return; // error about an unparseable message of ours: nothing waits for it
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    if (p.timer) clearTimeout(p.timer);
    if (msg.error) p.reject(new RpcClientError(msg.error.code, msg.error.message, msg.error.data));
    else p.resolve(msg.result);
  };

  return new Promise<DaemonClient>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`no answer from the daemon at ${url} within ${opts.timeoutMs ?? 10_000} ms`));
      ws.terminate();
    }, opts.timeoutMs ?? 10_000);

    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        clearTimeout(timer);
        reject(new Error(`daemon refused the connection (${res.statusCode}): ${body.trim() || res.statusMessage}`));
      });
      res.on('error', () => undefined);
    });
    ws.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot connect to the daemon at ${url}: ${err.message}`));
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      let msg: unknown;
      try {
        msg = JSON.parse(data.toString());
      } catch {
        return;
      }
      for (const m of Array.isArray(msg) ? msg : [msg]) {
        if (!hello && m && m.method === Notifications.connected) {
          hello = m.params as Connected;
          clearTimeout(timer);
          resolve(client);
          continue;
        }
        dispatch(m);
      }
    });
    ws.on('close', (code, reasonBuf) => {
      const reason = reasonBuf.toString();
      closedInfo = { code, reason };
      clearTimeout(timer);
      if (!hello) reject(new Error(`the daemon closed the connection before its hello (${code} ${reason})`));
      for (const [, p] of pending) {
        if (p.timer) clearTimeout(p.timer);
        p.reject(new Error(`connection to the daemon closed (${code}${reason ? ` ${reason}` : ''}) before the answer came`));
      }
      pending.clear();
      for (const fn of closeFns) fn(code, reason);
    });

    const client: DaemonClient = {
      get connected() {
        return hello!;
      },
      get isOpen() {
        return ws.readyState === WebSocket.OPEN;
      },
      request(method, params) {
        return new Promise((res, rej) => {
          if (ws.readyState !== WebSocket.OPEN) {
            rej(new Error(`connection to the daemon is closed${closedInfo ? ` (${closedInfo.code})` : ''}`));
            return;
          }
          const id = nextId++;
          const entry: { resolve: (v: unknown) => void; reject: (e: Error) => void; timer?: NodeJS.Timeout } = { resolve: res as (v: unknown) => void, reject: rej };
          if (opts.requestTimeoutMs) {
            entry.timer = setTimeout(() => {
              pending.delete(id);
              rej(new Error(`${method}: no answer within ${opts.requestTimeoutMs} ms`));
            }, opts.requestTimeoutMs);
          }
          pending.set(id, entry);
          ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
        });
      },
      notify(method, params) {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ jsonrpc: '2.0', method, params }));
      },
      onEvent(fn) {
        eventFns.add(fn);
        return () => eventFns.delete(fn);
      },
      onNotification(method, fn) {
        let s = notifFns.get(method);
        if (!s) notifFns.set(method, (s = new Set()));
        s.add(fn);
        return () => s!.delete(fn);
      },
      onClose(fn) {
        closeFns.add(fn);
        return () => closeFns.delete(fn);
      },
      close() {
        return new Promise<void>((res) => {
          if (ws.readyState === WebSocket.CLOSED) return res();
          ws.once('close', () => res());
          ws.close(1000);
          setTimeout(() => ws.terminate(), 1000).unref();
        });
      },
    };
  });
}
