/**
 * JSON-RPC 2.0 envelopes and errors, by hand (the spec is small and we need our own framing: one WebSocket text
 * frame = one message). Every inbound message is checked against `Envelope` before anything reads it.
 */
import { z } from 'zod';
import { ErrorCodes } from '@mathagent/shared';
import { NotFoundError } from '../store/errors';

export const RequestId = z.union([z.string().max(200), z.number().int(), z.null()]);
export type RequestId = z.infer<typeof RequestId>;

/** A request (has `id`) or a notification (no `id`) from a client. */
export const Envelope = z.object({
  jsonrpc: z.literal('2.0'),
  method: z.string().min(1).max(200),
  params: z.union([z.record(z.string(), z.unknown()), z.array(z.unknown())]).optional(),
  id: RequestId.optional(),
});
export type Envelope = z.infer<typeof Envelope>;

/** An error a handler (or the run controller) throws to choose the JSON-RPC code itself. */
export class RpcError extends Error {
  override readonly name = 'RpcError';
  constructor(readonly code: number, message: string, readonly data?: unknown) {
    super(message);
  }
}

export interface RpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

/** `path: message` per issue, as a person reads them (the root is `(root)`). */
export function issueList(err: z.ZodError): { path: string; message: string }[] {
  return err.issues.map((i) => ({ path: i.path.length ? i.path.map((p) => String(p)).join('.') : '(root)', message: i.message }));
}

export function invalidParams(method: string, err: z.ZodError): RpcError {
  const issues = issueList(err);
  return new RpcError(ErrorCodes.InvalidParams, `invalid params for ${method}: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, { issues });
}

/** Maps anything a handler throws to a JSON-RPC error object. */
export function toRpcError(err: unknown): RpcErrorObject {
  if (err instanceof RpcError) return err.data === undefined ? { code: err.code, message: err.message } : { code: err.code, message: err.message, data: err.data };
  if (err instanceof NotFoundError) return { code: ErrorCodes.NotFound, message: err.message };
  if (err instanceof z.ZodError) {
    const issues = issueList(err);
    return { code: ErrorCodes.InvalidParams, message: issues.map((i) => `${i.path}: ${i.message}`).join('; '), data: { issues } };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: ErrorCodes.InternalError, message: message || 'internal error' };
}

export function errorResponse(id: RequestId, error: RpcErrorObject): string {
  return JSON.stringify({ jsonrpc: '2.0', id, error });
}

export function resultResponse(id: RequestId, result: unknown): string {
  return JSON.stringify({ jsonrpc: '2.0', id, result: result === undefined ? null : result });
}

export function notification(method: string, params: unknown): string {
  return JSON.stringify({ jsonrpc: '2.0', method, params });
}
