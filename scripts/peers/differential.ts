export async function runDifferential(_o: Record<string, unknown>): Promise<number> {
  throw new Error('not yet');
}
