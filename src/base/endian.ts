/** Whether this machine stores multi-byte numbers little-endian (typed arrays use its order). */
export const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
