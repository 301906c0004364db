export { EndpointPool, EndpointHttpError, PoolRequestError, normalizeBase, type EndpointSpec, type PoolOptions, type PoolStats, type EndpointStats } from './endpointPool';
export { OpenAIPolicy, type OpenAIPolicyOptions, type RemoteStats } from './openaiPolicy';
export { resolveTokenizer } from './tokenizers';
