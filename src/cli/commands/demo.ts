/** `dynamo-lab demo`: send a demo scenario to any OpenAI endpoint and show where each request went. */
import chalk from 'chalk';
import type { Command } from '../command.js';
import { UsageError, UserError } from '../../base/errors.js';
import { DemoError, sendDemoRequest, type DemoResult } from '../../lab/demo.js';
import { formatDemoTable } from '../../lab/format.js';
import { loadScenarios, scenarioRequests } from '../../lab/scenarios.js';
import { ENDPOINT_OPTIONS, endpointUrl } from './endpoint.js';

export const demoCommand: Command = {
  name: 'demo',
  summary: 'Send a shared-prefix demo to a router and show which worker served each request',
  usage: 'dynamo-lab demo [--url <base>] [--scenario shared-prefix|system-prompt] [--model <id>] [--json]',
  examples: ['dynamo-lab demo --url http://127.0.0.1:8000', 'dynamo-lab demo --url http://$NODE_IP:30200 --scenario system-prompt --json'],
  options: {
    url: ENDPOINT_OPTIONS.url,
    scenario: {
      type: 'string',
      valueName: 'name',
      multiple: true,
      description: 'Scenario(s) from labs/scenarios.yaml (default: shared-prefix and system-prompt)',
    },
    model: ENDPOINT_OPTIONS.model,
    'api-key': ENDPOINT_OPTIONS['api-key'],
  },
  async run(values, _p, ctx) {
    const url = endpointUrl(values.url);
    const names = (values.scenario as string[] | undefined) ?? ['shared-prefix', 'system-prompt'];
    const known = Object.keys(loadScenarios());
    for (const n of names)
      if (!known.includes(n)) throw new UsageError(`unknown scenario "${n}".`, `Known scenarios: ${known.join(', ')}.`);
    const results: DemoResult[] = [];
    for (const r of scenarioRequests(names)) {
      try {
        const prev = results.at(-1);
        const history = r.follow_up && prev ? [...prev.messages, { role: 'assistant', content: prev.output_text }] : [];
        results.push(
          await sendDemoRequest(url, r, {
            model: values.model as string,
            signal: ctx.signal,
            apiKey: values['api-key'] as string | undefined,
            history,
          }),
        );
      } catch (err) {
        if (ctx.signal.aborted) throw err;
        if (err instanceof DemoError)
          throw new UserError(err.message, 'Is the router running? Start one with `dynamo-lab router --sim 2`, or pass --url.');
        throw err;
      }
    }
    if (ctx.globals.json) {
      ctx.stdout.write(JSON.stringify({ url, results: results.map(({ output_text: _t, messages: _m, ...rest }) => rest) }, null, 2) + '\n');
    } else {
      ctx.stdout.write(formatDemoTable(results).join('\n') + '\n');
      ctx.stdout.write(chalk.dim(`mode reported by the router: ${[...new Set(results.map((r) => r.mode))].join(', ')}\n`));
    }
    return 0;
  },
};
