/**
 * The command table, in the order `--help` shows it. Each command module is imported only when
 * that command runs (or its --help is asked for), so `dynamo-lab --version`, `--help` and every
 * command load only what they use. The summaries live here for the global help; a unit test
 * checks they match the modules'.
 */
import type { Command } from '../command.js';

export interface CommandEntry {
  readonly name: string;
  readonly summary: string;
  readonly load: () => Promise<Command>;
}

export const commands: readonly CommandEntry[] = [
  {
    name: 'start',
    summary: 'Open a lab (default: kv-routing) and go through it section by section',
    load: async () => (await import('./start.js')).startCommand,
  },
  { name: 'labs', summary: 'List the labs, their sections and your progress', load: async () => (await import('./labs.js')).labsCommand },
  {
    name: 'router',
    summary: 'Run the KV-aware router (OpenAI API) in front of simulated or real workers',
    load: async () => (await import('./router.js')).routerCommand,
  },
  {
    name: 'sim',
    summary: 'Run simulated vLLM-like workers (OpenAI API, prefix cache, KV events) without a GPU',
    load: async () => (await import('./sim.js')).simCommand,
  },
  {
    name: 'demo',
    summary: 'Send a shared-prefix demo to a router and show which worker served each request',
    load: async () => (await import('./demo.js')).demoCommand,
  },
  {
    name: 'traffic',
    summary: 'Send N streaming chat requests, C at a time, to a router and show how they spread over the workers',
    load: async () => (await import('./traffic.js')).trafficCommand,
  },
  {
    name: 'bench',
    summary: 'Replay a trace or synthetic workload against kv / round-robin / random routing and compare',
    load: async () => (await import('./bench.js')).benchCommand,
  },
  {
    name: 'check',
    summary: 'Check cluster prerequisites (`check gpu`: free GPUs per node vs what the lab needs)',
    load: async () => (await import('./check.js')).checkCommand,
  },
  {
    name: 'install',
    summary: 'Install NATS or etcd with Helm (repo add/update + upgrade --install), then verify pods and Service',
    load: async () => (await import('./install.js')).installCommand,
  },
  {
    name: 'deploy',
    summary: 'Apply the lab DynamoGraphDeployment (server-side, version-aware) + NodePort Service, then wait until Ready',
    load: async () => (await import('./deploy.js')).deployCommand,
  },
  {
    name: 'logs',
    summary: "Show a component's logs, filtered with the labs' patterns (decisions, cache, nats, events)",
    load: async () => (await import('./logs.js')).logsCommand,
  },
  {
    name: 'cleanup',
    summary: 'Remove what the labs created on the cluster (--all: also the NATS/etcd releases and namespaces)',
    load: async () => (await import('./cleanup.js')).cleanupCommand,
  },
  {
    name: 'doctor',
    summary: 'Diagnose the cluster setup: tools, context, RBAC, CRDs, operator, GPUs, NATS/etcd, the lab deployment',
    load: async () => (await import('./doctor.js')).doctorCommand,
  },
];

export function findCommand(name: string): CommandEntry | undefined {
  return commands.find((c) => c.name === name);
}
