// A token bucket: a sustained rate with a burst, for throttling a peer that floods requests.

/** `rate` tokens per second refill a bucket of `burst`; each message takes one. Time is in milliseconds. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly rate: number,
    readonly burst: number,
    now: number = performance.now(),
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /**
   * How many messages may go now, before the next {@link TokenBucket.take}: {@link TokenBucket.take}, message by
   * message, lets through the one that puts the bucket in debt, so this is the tokens held, rounded down, plus one.
   */
  budget(now: number = performance.now()): number {
    this.#refill(now);
    return this.tokens >= 0 ? Math.floor(this.tokens) + 1 : 1;
  }

  /** Takes `count` tokens at the time of the last {@link TokenBucket.budget}; the wait as {@link TokenBucket.take}. */
  takeMany(count: number): number {
    this.tokens -= count;
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.rate;
  }

  #refill(now: number): void {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
  }

  /** Takes one token. Returns 0 when the bucket still had it, else the ms until the debt is paid back. */
  take(now: number = performance.now()): number {
    this.#refill(now);
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.rate;
  }
}
