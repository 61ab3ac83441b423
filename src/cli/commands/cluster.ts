/** Cluster-target commands (GPU check, Helm installs, DGD deploy, logs, cleanup, doctor). */
import type { Command } from '../command.js';
import { notYet } from './not-yet.js';

export const clusterCommands: readonly Command[] = [
  notYet('check', 'Check cluster prerequisites (`check gpu`: free GPUs per node)', 'dynamo-lab check gpu [--json]', {}, { name: 'what', description: 'gpu', min: 1, max: 1 }),
  notYet('install', 'Install NATS or etcd with Helm', 'dynamo-lab install nats|etcd [--dry-run]', {}, { name: 'chart', description: 'nats | etcd', min: 1, max: 1 }),
  notYet('deploy', 'Apply the lab DynamoGraphDeployment', 'dynamo-lab deploy [--name <dgd>] [--router kv|round-robin] [--dry-run]'),
  notYet('logs', 'Show a component\'s logs with the lab\'s grep patterns', 'dynamo-lab logs [--component <name>] [--grep <regex>] [--follow]'),
  notYet('cleanup', 'Remove what the labs created on the cluster', 'dynamo-lab cleanup [--all] [--yes] [--dry-run]'),
  notYet('doctor', 'Diagnose the cluster setup', 'dynamo-lab doctor [--json]'),
];
