/** Defaults shared by several commands (kept in a module with no imports, so they cost nothing to load). */
export const DEFAULT_LAB = 'kv-routing';
