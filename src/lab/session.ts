/**
 * Everything a local lab run starts (simulated workers, the embedded router) and what it
 * learned (demo results, worker log lines). `stop()` releases all of it; it is safe to call
 * more than once and is called on Cleanup, on Ctrl+C and on any exit path.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { SimWorker } from '../sim/index.js';
import type { RouterServer } from '../server/router-server.js';
import type { DynamoStack } from '../engine/dynamo.js';
import type { DemoResult } from './demo.js';

/** What backs the local actions: the embedded router + sim workers, or the real Dynamo from the peers venv. */
export type LabEngine = 'embedded' | 'dynamo';
export const LAB_ENGINES: readonly LabEngine[] = ['embedded', 'dynamo'];

export class LocalSession {
  workers: SimWorker[] = [];
  router: RouterServer | undefined;
  /** Block size the workers were started with (the router must use the same). */
  blockSize = 16;
  readonly demo: DemoResult[] = [];
  /** demo.run steps so far (numbers each run's results). */
  demoRuns = 0;
  readonly traffic: DemoResult[] = [];
  /** JSON of the router's scoring config, to know when a step asks for a different one. */
  routerConfigKey?: string;
  /** A local nats-server this session started (stopped with everything else). */
  nats: { url: string; stop: () => Promise<void> } | undefined;
  /** Everything this session has listened on, checked to be free after stop. */
  readonly endpoints: Array<{ id: string; url: string }> = [];
  private readonly logLines = new Map<string, string[]>();
  static readonly LOG_LINES_KEPT = 2000;

  /** The real Dynamo (frontend + mocker + nats-server) when engine is dynamo. */
  dynamo: DynamoStack | undefined;

  constructor(
    /** Full worker/router log file (bounded views show only the tail). */
    readonly logFile?: string,
    readonly engine: LabEngine = 'embedded',
  ) {
    if (logFile) mkdirSync(dirname(logFile), { recursive: true });
  }

  /** A logger for one component: kept in a bounded buffer and appended to the log file. */
  logger(component: string): (line: string) => void {
    return (line: string) => {
      const buf = this.logLines.get(component) ?? [];
      buf.push(line);
      if (buf.length > LocalSession.LOG_LINES_KEPT) buf.splice(0, buf.length - LocalSession.LOG_LINES_KEPT);
      this.logLines.set(component, buf);
      if (this.logFile) {
        try {
          appendFileSync(this.logFile, `${new Date().toISOString()} [${component}] ${line}\n`);
        } catch {
          /* logging must never break the lab */
        }
      }
    };
  }

  logsOf(component: string): readonly string[] {
    return this.logLines.get(component) ?? [];
  }

  components(): string[] {
    return [...this.logLines.keys()].sort();
  }

  has(resource: string): boolean {
    if (resource === 'workers') return this.workers.length > 0 || !!this.dynamo?.workersRunning;
    if (resource === 'router') return this.router !== undefined || !!this.dynamo?.frontendRunning;
    if (resource === 'nats') return this.nats !== undefined;
    return false;
  }

  async stop(): Promise<string[]> {
    const lines: string[] = [];
    if (this.router) {
      const url = this.router.url;
      await this.router.close();
      this.router = undefined;
      lines.push(`router stopped (${url})`);
    }
    if (this.dynamo) {
      const d = this.dynamo;
      this.dynamo = undefined;
      const url = d.frontendUrl;
      await d.close();
      lines.push(`Dynamo frontend${url ? ` (${url})` : ''}, ${d.shape.workers} mocker workers and their nats-server stopped`);
    }
    if (this.nats) {
      const url = this.nats.url;
      await this.nats.stop();
      this.nats = undefined;
      lines.push(`nats-server stopped (${url})`);
    }
    const workers = this.workers;
    this.workers = [];
    await Promise.all(workers.map((w) => w.close()));
    for (const w of workers) lines.push(`${w.id} stopped (${w.url})`);
    return lines;
  }
}
