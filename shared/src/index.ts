export * from './trajectory';
export * from './runConfig';
export * from './protocol';
