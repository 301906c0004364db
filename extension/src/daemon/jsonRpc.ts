/**
 * A thin, typed JSON-RPC 2.0 layer for the daemon connection (shared/src/protocol.ts). Every inbound frame is
 * parsed and schema-checked here: a malformed message becomes `{ kind: 'invalid' }` with a reason for the log,
 * never an exception, so a misbehaving daemon cannot crash the extension host.
 */
import { z } from 'zod';
import { ConnectedNotification, DaemonEvent, Methods, Notifications, type MethodName, type ParamsOf } from '@mathagent/shared';

const Id = z.union([z.number(), z.string()]);
const ErrorObject = z.object({ code: z.number().int(), message: z.string(), data: z.unknown().optional() });
const ResponseMessage = z.union([
  z.object({ jsonrpc: z.literal('2.0'), id: Id.nullable(), result: z.unknown() }).refine((m) => 'result' in m, 'missing result'),
  z.object({ jsonrpc: z.literal('2.0'), id: Id.nullable(), error: ErrorObject }),
]);
const NotificationMessage = z.object({ jsonrpc: z.literal('2.0'), method: z.string(), params: z.unknown().optional() });

export type RpcError = z.infer<typeof ErrorObject>;
export type Incoming =
  | { kind: 'response'; id: number | string | null; result: unknown }
  | { kind: 'error'; id: number | string | null; error: RpcError }
  | { kind: 'connected'; hello: z.infer<typeof ConnectedNotification> }
  | { kind: 'event'; event: DaemonEvent }
  | { kind: 'lsp'; message: Record<string, unknown> }
  | { kind: 'notification'; method: string; params: unknown }
  | { kind: 'invalid'; reason: string };

/** Shortens a zod error to one line for the output channel. */
function issues(e: z.ZodError): string {
  return e.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}

/** Parse one WebSocket text frame from the daemon. Never throws. */
export function parseIncoming(raw: string): Incoming {
  let data: unknown;
  try { data = JSON.parse(raw); } catch { return { kind: 'invalid', reason: `not JSON: ${raw.slice(0, 80)}` }; }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return { kind: 'invalid', reason: 'not a JSON-RPC object (batches are not used by the daemon)' };
  const obj = data as Record<string, unknown>;
  if ('method' in obj) {
    if ('id' in obj && obj.id !== undefined) return { kind: 'invalid', reason: `daemon sent a request (${String(obj.method)}); the extension serves none` };
    const n = NotificationMessage.safeParse(obj);
    if (!n.success) return { kind: 'invalid', reason: `bad notification: ${issues(n.error)}` };
    const { method, params } = n.data;
    if (method === Notifications.event) {
      const ev = DaemonEvent.safeParse(params);
      return ev.success ? { kind: 'event', event: ev.data } : { kind: 'invalid', reason: `bad event: ${issues(ev.error)}` };
    }
    if (method === Notifications.connected) {
      const hello = ConnectedNotification.safeParse(params);
      return hello.success ? { kind: 'connected', hello: hello.data } : { kind: 'invalid', reason: `bad connected: ${issues(hello.error)}` };
    }
    if (method === Notifications.lsp) {
      if (typeof params !== 'object' || params === null || Array.isArray(params)) return { kind: 'invalid', reason: 'lsp/message without an object payload' };
      return { kind: 'lsp', message: params as Record<string, unknown> };
    }
    return { kind: 'notification', method, params };
  }
  const r = ResponseMessage.safeParse(obj);
  if (!r.success) return { kind: 'invalid', reason: `bad response: ${issues(r.error)}` };
  if ('error' in r.data) return { kind: 'error', id: r.data.id, error: r.data.error };
  return { kind: 'response', id: r.data.id, result: (r.data as { result: unknown }).result };
}

/** Validate a method's result with its schema; throws an Error that names the method (caught by the caller). */
export function validateResult<M extends MethodName>(method: M, result: unknown): z.infer<(typeof Methods)[M]['result']> {
  const parsed = Methods[method].result.safeParse(result);
  if (!parsed.success) throw new Error(`daemon answered ${method} with an unexpected shape: ${issues(parsed.error)}`);
  return parsed.data as z.infer<(typeof Methods)[M]['result']>;
}

/** Check params on the way out too, so a bug in the extension is reported here, not as a daemon InvalidParams. */
export function encodeRequest<M extends MethodName>(id: number, method: M, params: ParamsOf<M>): string {
  const parsed = Methods[method].params.safeParse(params);
  if (!parsed.success) throw new Error(`bad params for ${method}: ${issues(parsed.error)}`);
  return JSON.stringify({ jsonrpc: '2.0', id, method, params: parsed.data });
}

export function encodeNotification(method: string, params: unknown): string {
  return JSON.stringify({ jsonrpc: '2.0', method, params });
}

/** A JSON-RPC error from the daemon, with its code, as an Error a command can show. */
export class DaemonRpcError extends Error {
  constructor(readonly method: string, readonly code: number, message: string, readonly data?: unknown) {
    super(`${method}: ${message}`);
    this.name = 'DaemonRpcError';
  }
}
