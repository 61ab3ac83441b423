/** Test helper: how often the event loop turned while `work` ran (0 when `work` blocks it). */
export async function loopTurnsDuring<T>(work: () => Promise<T>): Promise<{ result: T; turns: number }> {
  let turns = 0;
  let done = false;
  const tick = () => {
    turns++;
    if (!done) setImmediate(tick);
  };
  setImmediate(tick);
  try {
    return { result: await work(), turns };
  } finally {
    done = true;
  }
}

/** A prompt of about 100k tokens in several scripts. */
export const LARGE_PROMPT = 'Lorem ipsum dolor sit amet, 日本語 🎉 1234. '.repeat(8_000);
