/**
 * The engine's built-in local operations, one file per family, registered here by name.
 * Nothing in them knows about a particular lab or step.
 */
import { BENCH_ACTIONS } from './bench.js';
import { DYNAMO_ACTIONS } from './dynamo.js';
import { ROUTER_IN_PLACE } from './in-place.js';
import { NATS_ACTIONS } from './nats.js';
import { OBSERVE_ACTIONS } from './observe.js';
import { ROUTER_ACTIONS } from './router.js';
import { SESSION_ACTIONS } from './session.js';
import { SYSTEM_ACTIONS } from './system.js';
import { TRAFFIC_ACTIONS } from './traffic.js';
import type { ActionDef } from './types.js';
import { WORKERS_ACTIONS } from './workers.js';
import type { LabEngine } from '../session.js';

export type { ActionDef, ActionResult } from './types.js';

const ACTIONS: Readonly<Record<string, ActionDef>> = {
  ...SYSTEM_ACTIONS,
  ...WORKERS_ACTIONS,
  ...ROUTER_ACTIONS,
  'router.in-place': ROUTER_IN_PLACE,
  ...TRAFFIC_ACTIONS,
  ...OBSERVE_ACTIONS,
  ...NATS_ACTIONS,
  ...BENCH_ACTIONS,
  ...SESSION_ACTIONS,
};

/**
 * The action `name` as the session's engine implements it: with the dynamo engine, the real
 * Dynamo frontend + mocker back the actions that start, query or stop workers and router.
 */
export function actionFor(name: string, engine: LabEngine = 'embedded'): ActionDef | undefined {
  if (engine === 'dynamo' && Object.hasOwn(DYNAMO_ACTIONS, name)) return DYNAMO_ACTIONS[name];
  return Object.hasOwn(ACTIONS, name) ? ACTIONS[name] : undefined;
}
