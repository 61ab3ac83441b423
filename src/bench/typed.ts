/** A copy of typed array `a` with room for `n` elements (the new ones zero). */
export function grown<T extends Int32Array | Uint32Array | Uint8Array>(a: T, n: number): T {
  const b = new (a.constructor as new (length: number) => T)(n);
  b.set(a);
  return b;
}
