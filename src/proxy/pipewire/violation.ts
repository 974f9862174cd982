// The filter's refusal of a message: raised inside handlers, fatal for the connection (pipewire.md §7.8).

/** Raised inside handlers to stop processing a message: fatal for the connection. */
export class Violation extends Error {
  constructor(
    readonly reason: string,
    readonly detail: string,
  ) {
    super(`${reason}: ${detail}`);
  }
}
