/** Daemon version, reported in `connected` and `daemon/info`. */
export const VERSION = '0.1.0';
