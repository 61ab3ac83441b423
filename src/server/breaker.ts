/**
 * Per-worker circuit breaker (passive health): consecutive failures before the first byte open
 * the circuit; after a cool-down one trial request is let through (half-open); its success
 * closes the circuit, its failure opens it again.
 */
export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  /** Consecutive failures that open the circuit (default 3). */
  readonly failureThreshold?: number;
  /** How long the circuit stays open before a trial request (default 5000 ms). */
  readonly cooldownMs?: number;
}

export class CircuitBreaker {
  private stateNow: BreakerState = 'closed';
  private failures = 0;
  private openedAt = 0;
  private trialInFlight = false;
  readonly failureThreshold: number;
  readonly cooldownMs: number;
  /** Times the circuit opened (for metrics). */
  opens = 0;

  constructor(opts: BreakerOptions = {}) {
    this.failureThreshold = Math.max(1, opts.failureThreshold ?? 3);
    this.cooldownMs = Math.max(0, opts.cooldownMs ?? 5000);
  }

  state(nowMs: number): BreakerState {
    if (this.stateNow === 'open' && nowMs - this.openedAt >= this.cooldownMs) return 'half-open';
    return this.stateNow;
  }

  /** May a request be sent to this worker now? (Does not reserve the half-open trial.) */
  allows(nowMs: number): boolean {
    const s = this.state(nowMs);
    return s === 'closed' || (s === 'half-open' && !this.trialInFlight);
  }

  /** A request was sent: in half-open state it becomes the single trial. */
  onAttempt(nowMs: number): void {
    if (this.state(nowMs) === 'half-open') {
      this.stateNow = 'half-open';
      this.trialInFlight = true;
    }
  }

  onSuccess(): void {
    this.stateNow = 'closed';
    this.failures = 0;
    this.trialInFlight = false;
  }

  onFailure(nowMs: number): void {
    this.failures++;
    const wasTrial = this.trialInFlight || this.stateNow === 'half-open';
    this.trialInFlight = false;
    if (wasTrial || (this.stateNow === 'closed' && this.failures >= this.failureThreshold)) {
      if (this.stateNow !== 'open' || wasTrial) this.opens++;
      this.stateNow = 'open';
      this.openedAt = nowMs;
    }
  }

  /** Close the circuit (e.g. the active health check saw the worker come back). */
  reset(): void {
    this.onSuccess();
  }

  /** Milliseconds until an open circuit lets a trial through (0 when not open). */
  retryInMs(nowMs: number): number {
    return this.stateNow === 'open' ? Math.max(0, this.cooldownMs - (nowMs - this.openedAt)) : 0;
  }

  get consecutiveFailures(): number {
    return this.failures;
  }
}
