/**
 * A text bar of `width` cells for value/max, clamped to [0, width]: `█` filled, `empty` for the
 * rest. With `halves`, a remainder of half a cell or more shows as `▌` (finer for wide charts).
 */
export function bar(value: number, max: number, width: number, opts: { empty?: string; halves?: boolean } = {}): string {
  const frac = max > 0 && Number.isFinite(value) ? Math.min(1, Math.max(0, value / max)) : 0;
  const cells = frac * width;
  const empty = opts.empty ?? '░';
  const full = opts.halves ? Math.floor(cells) : Math.round(cells);
  const half = opts.halves && cells - full >= 0.5 ? '▌' : '';
  return '█'.repeat(full) + half + empty.repeat(width - full - half.length);
}
