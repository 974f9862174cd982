// The linear blob sizes a guest's clients asked for lately, so that a channel opened ahead of its client asks the host
// their image requirements before the client needs them (issue 15: never wait on the host for what the guest knows).
//
// Image requirements cannot be shared between channels: the template id a host answers is an item of that context
// (crossdomain.md §5.4). What the guest can know is which sizes its clients use: an app creates the same pool size
// each time it starts (foot: 512 MiB), so a channel waiting in the reserve asks for those sizes while it is idle, and
// the client's first pool costs one device round trip (the blob) instead of two.

/** How many distinct sizes are remembered: enough for a few apps' first pools, few enough to ask each time. */
const KEEP = 4;

/** What `crossway status` says about requirements asked ahead. */
export interface RequirementsAheadStatus {
  /** Queries sent on channels before a client asked (each one a template item in that context). */
  readonly asked: number;
  /** Client requests for a blob that found their requirements asked ahead. */
  readonly used: number;
  /** The widths (bytes) remembered now, most recent first. */
  readonly widths: readonly number[];
}

/** The most recent distinct linear-blob widths, and how often asking ahead for them paid. */
export class RecentBlobSizes {
  private readonly recent: number[] = [];
  private asked = 0;
  private used = 0;

  /** A client's channel asked the host for a blob `width` bytes wide (R8 × 1): remember it, most recent first. */
  note(width: number): void {
    const at = this.recent.indexOf(width);
    if (at === 0) return;
    if (at > 0) this.recent.splice(at, 1);
    this.recent.unshift(width);
    if (this.recent.length > KEEP) this.recent.length = KEEP;
  }

  /** The widths to ask a new channel for, most recent first. */
  widths(): readonly number[] {
    return this.recent;
  }

  /** Counts a query sent ahead of any client's request. */
  countAsked(): void {
    this.asked++;
  }

  /** Counts a client's request answered by a query sent ahead. */
  countUsed(): void {
    this.used++;
  }

  status(): RequirementsAheadStatus {
    return { asked: this.asked, used: this.used, widths: [...this.recent] };
  }
}
