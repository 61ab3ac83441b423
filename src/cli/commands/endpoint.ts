/** The flags of commands that talk to an OpenAI endpoint (`demo`, `traffic`): --url, --model, --api-key. */
import { UsageError } from '../../base/errors.js';
import { DEFAULT_MODEL } from '../../tokenizer/index.js';
import type { OptionSpec } from '../command.js';

export const ENDPOINT_OPTIONS: Readonly<Record<'url' | 'model' | 'api-key', OptionSpec>> = {
  url: { type: 'string', valueName: 'base', default: 'http://127.0.0.1:8000', description: 'Base URL of the OpenAI-compatible endpoint' },
  model: { type: 'string', valueName: 'id', default: DEFAULT_MODEL, description: 'Model name sent in each request' },
  'api-key': { type: 'string', valueName: 'key', description: 'Bearer token, if the endpoint needs one' },
};

/** --url, checked: a usage error naming the value when it is not a URL. */
export function endpointUrl(v: unknown): string {
  const url = String(v);
  try {
    new URL(url);
  } catch {
    throw new UsageError(`--url "${url}" is not a URL.`, 'Give a base URL such as http://127.0.0.1:8000');
  }
  return url;
}
