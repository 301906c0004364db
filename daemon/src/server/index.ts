export { startServer, RpcError, type ClientConnection, type ClientStats, type DaemonServer, type Logger, type LogLevel, type RunController, type ServerOptions } from './server';
export { EventBus, type EventBusOptions, type EventListener } from './eventBus';
export { connectClient, readTokenFile, RpcClientError, type ConnectOptions, type Connected, type DaemonClient } from './client';
export { defaultTokenFile, ensureToken } from './token';
export { benchEvents, type BenchEventsOptions, type BenchEventsResult } from './bench';
