/** "Did you mean …?": the closest known name by edit distance, when it is close enough. */
import leven from 'leven';

export function closest(input: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = k.startsWith(input) || input.startsWith(k) ? 1 : leven(input, k);
    if (d < bestD) {
      best = k;
      bestD = d;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(best.length / 3)) ? best : undefined;
}
