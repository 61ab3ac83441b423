/**
 * The router's clock, in whole milliseconds: the wall clock as it was when the process started,
 * advanced by the monotonic clock since. A step of the wall clock (NTP, a resumed VM) does not move
 * it, so block TTLs, breakers, health windows, session TTLs and peer silence all count real elapsed
 * time. Timestamps meant for other processes (`published_at`, `created`) stay on `Date.now()`.
 */
export function nowMs(): number {
  return Math.floor(performance.timeOrigin + performance.now());
}
