/** `dynamo-lab traffic`: background chat traffic against any OpenAI endpoint, then requests per worker. */
import { UserError } from '../../base/errors.js';
import { formatTraffic } from '../../lab/format.js';
import { DEFAULT_TRAFFIC_PROMPT, sendTraffic } from '../../lab/traffic.js';
import type { Command } from '../command.js';
import { intOpt } from './cluster-options.js';
import { ENDPOINT_OPTIONS, endpointUrl } from './endpoint.js';

export const trafficCommand: Command = {
  name: 'traffic',
  summary: 'Send N streaming chat requests, C at a time, to a router and show how they spread over the workers',
  usage:
    'dynamo-lab traffic [--url <base>] [--requests <n>] [--concurrency <c>] [--prompt <text with {i}>] [--max-tokens <n>] [--model <id>] [--json]',
  examples: [
    'dynamo-lab traffic --url http://127.0.0.1:8000',
    'dynamo-lab traffic --url http://$NODE_IP:30200 --requests 30 --concurrency 3 --max-tokens 100',
  ],
  options: {
    ...ENDPOINT_OPTIONS,
    requests: { type: 'string', valueName: 'n', default: '30', description: 'How many requests to send' },
    concurrency: { type: 'string', valueName: 'c', default: '3', description: 'How many requests are in flight at once' },
    prompt: {
      type: 'string',
      valueName: 'text',
      default: DEFAULT_TRAFFIC_PROMPT,
      description: 'Prompt template; {i} becomes the request number',
    },
    'max-tokens': { type: 'string', valueName: 'n', default: '20', description: 'max_tokens of each request' },
  },
  async run(values, _p, ctx) {
    const url = endpointUrl(values.url);
    const total = intOpt(values.requests, 'requests', 30, 1, 100_000);
    const { results, errors, wallSeconds } = await sendTraffic(url, {
      total,
      concurrency: intOpt(values.concurrency, 'concurrency', 3, 1, 1000),
      prompt: values.prompt as string,
      maxTokens: intOpt(values['max-tokens'], 'max-tokens', 20, 1, 1_000_000),
      model: values.model as string,
      apiKey: values['api-key'] as string | undefined,
      signal: ctx.signal,
    });
    if (ctx.signal.aborted) return 130;
    if (ctx.globals.json) {
      const perWorker: Record<string, number> = {};
      for (const r of results) perWorker[r.worker ?? '?'] = (perWorker[r.worker ?? '?'] ?? 0) + 1;
      ctx.stdout.write(
        `${JSON.stringify({ url, requests: total, ok: results.length, failed: errors.length, wall_s: wallSeconds, per_worker: perWorker, errors: errors.slice(0, 5) }, null, 2)}\n`,
      );
    } else {
      ctx.stdout.write(`${formatTraffic(results, [], wallSeconds).join('\n')}\n`);
    }
    if (errors.length)
      throw new UserError(
        `${errors.length} of ${total} requests failed; first: ${errors[0]}`,
        'Is the endpoint up? Check it with `dynamo-lab demo --url <base>`.',
      );
    return 0;
  },
};
