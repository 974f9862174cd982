// Where a socket or writer says whether it is idle, in a native fast path's shared state (fast-state.ts,
// device-fast-state.ts): one Float64Array slot, 1 while idle.

/** One published idleness slot; publishes nothing until given a target. */
export class IdleFlag {
  private state: Float64Array | null = null;
  private index = 0;

  /** Publishes into `state[index]` from now on; with null, stops (after setting the last slot to 0). */
  target(state: Float64Array | null, index: number): void {
    if (state === null && this.state !== null) this.state[this.index] = 0;
    this.state = state;
    this.index = index;
  }

  /** Whether there is a slot to publish to (the owner may skip working out its idleness otherwise). */
  get active(): boolean {
    return this.state !== null;
  }

  set(idle: boolean): void {
    if (this.state !== null) this.state[this.index] = idle ? 1 : 0;
  }
}
