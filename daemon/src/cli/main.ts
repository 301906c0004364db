/**
 * `mathagent` — the command-line entry point. Each command lives in its own module under cli/ and exports
 * `register(program)`; this file only wires them together.
 */
import { Command } from 'commander';
import { VERSION } from '../version';
import * as runCmd from './run';
import * as daemonCmd from './daemon';
import * as runsCmd from './runs';
import * as exportCmd from './export';
import * as evalCmd from './eval';
import * as experimentCmd from './experiment';
import * as benchCmd from './bench';
import * as gradeCmd from './grade';
import * as doctorCmd from './doctor';
import * as serveCmd from './serve';

const program = new Command();
program
  .name('mathagent')
  .description('MathAgent Studio: train math agents with online iterative multi-turn preference learning (M-DPO / M-KTO).')
  .version(VERSION)
  .showHelpAfterError('(run `mathagent <command> --help` for the options)');

// Command modules register themselves here, one line each.
const modules: Array<{ register(p: Command): void }> = [
  runCmd,
  daemonCmd,
  runsCmd,
  exportCmd,
  evalCmd,
  experimentCmd,
  benchCmd,
  gradeCmd,
  doctorCmd,
  serveCmd,
];
for (const m of modules) m.register(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`mathagent: ${msg}\n`);
  process.exitCode = 1;
});
