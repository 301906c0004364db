/** Errors the store throws for conditions a caller can act on (the server maps them to JSON-RPC codes). */

/** A run, trajectory or other row named by id does not exist. Mapped to ErrorCodes.NotFound by the server. */
export class NotFoundError extends Error {
  override readonly name = 'NotFoundError';
  constructor(what: string, id: string) {
    super(`${what} not found: ${id}`);
  }
}

/** The database file cannot be used by this version (newer schema, corrupt, not a MathAgent database). */
export class StoreVersionError extends Error {
  override readonly name = 'StoreVersionError';
}
