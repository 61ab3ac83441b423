/** The command table: one module per command, listed in the order `--help` shows them. */
import type { Command } from '../command.js';
import { startCommand } from './start.js';
import { labsCommand } from './labs.js';
import { routerCommand } from './router.js';
import { simCommand } from './sim.js';
import { demoCommand } from './demo.js';
import { trafficCommand } from './traffic.js';
import { benchCommand } from './bench.js';
import { checkCommand } from './check.js';
import { installCommand } from './install.js';
import { deployCommand } from './deploy.js';
import { logsCommand } from './logs.js';
import { cleanupCommand } from './cleanup.js';
import { doctorCommand } from './doctor.js';

export const commands: readonly Command[] = [
  startCommand,
  labsCommand,
  routerCommand,
  simCommand,
  demoCommand,
  trafficCommand,
  benchCommand,
  checkCommand,
  installCommand,
  deployCommand,
  logsCommand,
  cleanupCommand,
  doctorCommand,
];

export function findCommand(name: string): Command | undefined {
  return commands.find((c) => c.name === name);
}
