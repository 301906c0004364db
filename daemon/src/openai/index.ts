export { startOpenAIServer, type OpenAIServer, type OpenAIServerOptions } from './server';
export { GenerateBatcher, type BatchPolicy, type BatcherOptions, type BatcherStats } from './batcher';
export { ApiError, CompletionRequest } from './schema';
