/** Training: losses (SFT/RAFT, M-DPO, DPO ablation, M-KTO), batching and masks, AdamW + schedules, the Trainer. */
export * from './losses';
export * from './batch';
export * from './optim';
export * from './trainer';
