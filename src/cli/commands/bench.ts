import { notYet } from './not-yet.js';

export const benchCommand = notYet('bench', 'Replay a trace or synthetic workload against kv / round-robin / random routing', 'dynamo-lab bench [--trace <jsonl> | --synthetic <spec>] [--modes kv,round-robin,random] [--virtual-time] [--json]');
