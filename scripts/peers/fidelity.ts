export async function runFidelity(_o: Record<string, unknown>): Promise<number> {
  throw new Error('not yet');
}
