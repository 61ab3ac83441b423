/**
 * Deterministic long text for the long-prefix demo scenarios: a system prompt, a document, a
 * chat history of thousands of tokens. Built from the project's own sentences (below) shuffled
 * by a seeded generator, so the same name and size always give the same text, offline.
 *
 * In scenarios.yaml a string may hold `{{filler:<name>:<words>}}`; it is replaced by
 * `<words>` words of text seeded by `<name>` (about 1.3 tokens per word with the Qwen vocabulary).
 */

const SENTENCES: readonly string[] = [
  'A router that knows which worker holds which prefix can send a request where most of its prompt is already computed.',
  'Each worker keeps the attention keys and values of recent prompts in fixed-size blocks of its GPU memory.',
  'A block is identified by a hash of its tokens and of every block before it, so equal hashes mean equal prefixes.',
  'When a worker stores or evicts a block it publishes an event, and the router updates its index from those events alone.',
  'Prefill reads the whole prompt once and writes its keys and values; decode then produces one token per step.',
  'The time to first token is mostly prefill when prompts are long, and prefill cost grows with every uncached token.',
  'Round-robin routing ignores the cache, so a long prompt that was computed on one worker is computed again on the next.',
  'The cost of a worker is its booked prefill work plus its active decode blocks, minus what it already has cached.',
  'A load term keeps one popular prefix from pulling every request onto a single worker until it is saturated.',
  'Operators watch the hit rate, the queue depth and the time to first token per worker to see whether routing helps.',
  'A cluster runs the frontend, the router and the workers as separate pods, and the events travel over a message bus.',
  'A simulated worker follows the same timing model as the real engine, with a constant term and a per-token term.',
  'Chunked prefill splits a long prompt into passes so that decoding requests are not stalled behind it.',
  'Eviction frees the least recently used blocks first, but never a block that a running request still references.',
  'A conversation resends its whole history each turn, so the worker that served the last turn already holds most of the next.',
  'Documents asked several questions share everything up to the question, which is usually the largest part of the prompt.',
  'A long system prompt with instructions, examples and tool descriptions is the same for every user of an application.',
  'The benchmark replays a trace of arrival times and prompt hashes, so two routing policies see exactly the same load.',
  'Tail latency matters as much as the average, because users notice the slowest answers first.',
  'A worker that restarts loses its cache, and the router must forget what it believed that worker held.',
  'Session affinity pins a conversation to one worker, which helps the cache but can overload that worker.',
  'The router scores every eligible worker and picks the lowest cost, breaking ties at random with a fixed seed.',
  'Metrics are exported in the Prometheus text format, with counters for requests, cached tokens and computed tokens.',
  'The block size trades index precision against memory: small blocks match more of a prefix but cost more events.',
  'A prefix cache hit saves compute, memory bandwidth and energy, and it also shortens the queue for everyone else.',
  'Routing decisions are logged with each candidate worker, its overlap in blocks and its final cost.',
  'A deployment describes its frontend and worker services once, and the operator creates the pods and services from it.',
  'Health checks, circuit breakers and busy thresholds decide which workers may receive a request at all.',
  'A request that cannot reach its worker before the first byte is retried on the next eligible worker.',
  'The lab runs every step locally with simulated workers, or on a cluster with the real components.',
];

/** mulberry32 seeded from a string hash: small, fast, deterministic. */
function rng(seed: string): () => number {
  let h = 2166136261;
  for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 16777619);
  let a = h >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** About `words` words of deterministic text for `name`, in numbered paragraphs. */
export function fillerText(name: string, words: number): string {
  const next = rng(name);
  const paragraphs: string[] = [];
  let count = 0;
  let para: string[] = [];
  while (count < words) {
    const s = SENTENCES[Math.floor(next() * SENTENCES.length)]!;
    para.push(s);
    count += s.split(' ').length;
    if (para.length >= 5) {
      paragraphs.push(`${paragraphs.length + 1}. ${para.join(' ')}`);
      para = [];
    }
  }
  if (para.length) paragraphs.push(`${paragraphs.length + 1}. ${para.join(' ')}`);
  return paragraphs.join('\n\n');
}

const FILLER_RE = /\{\{filler:([a-z0-9-]+):(\d+)\}\}/g;

/** Replace every `{{filler:<name>:<words>}}` in `s`. */
export function expandFiller(s: string): string {
  return s.replace(FILLER_RE, (_m, name: string, words: string) => fillerText(name, Number(words)));
}
