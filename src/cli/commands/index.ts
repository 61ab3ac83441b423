/** The command table: one module per command, listed in the order `--help` shows them. */
import type { Command } from '../command.js';
import { startCommand } from './start.js';
import { labsCommand } from './labs.js';
import { routerCommand } from './router.js';
import { simCommand } from './sim.js';
import { demoCommand } from './demo.js';
import { benchCommand } from './bench.js';
import { clusterCommands } from './cluster.js';

export const commands: readonly Command[] = [
  startCommand,
  labsCommand,
  routerCommand,
  simCommand,
  demoCommand,
  benchCommand,
  ...clusterCommands,
];

export function findCommand(name: string): Command | undefined {
  return commands.find((c) => c.name === name);
}
