export { Store, openStore } from './store';
export type {
  AnnotationInput, CheckpointInput, CheckpointRecord, CreateRunInput, EvalInput, EvalProblem, EvalRecord, IterationPatch, OpenStoreOptions,
  RunPatch, Split, TrajectoryFilter,
} from './store';
export { NotFoundError, StoreVersionError } from './errors';
export { MIGRATIONS, SCHEMA_VERSION, migrate, type Migration } from './migrations';
export { configDir, dataDir, defaultDbPath, runsDirFor } from './paths';
