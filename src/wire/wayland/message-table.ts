// A value per message descriptor (a connection's hooks), read by MessageDesc.index: one array read per message.
import { compiledMessageCount, type MessageDesc } from "./protocol-registry.ts";

/**
 * Values keyed by {@link MessageDesc}. A proxy looks its hook up once per message; a Map keyed by the descriptor
 * cost a hash lookup there (2% of a request burst's CPU in perf), an array sized for every compiled message costs
 * one bounds-checked read. Messages compiled later (extra XML) still work: their reads fall past the end.
 */
export class MessageTable<T> {
  readonly #values: (T | undefined)[] = new Array<T | undefined>(compiledMessageCount()).fill(undefined);

  get(desc: MessageDesc): T | undefined {
    return this.#values[desc.index];
  }

  set(desc: MessageDesc, value: T): void {
    const v = this.#values;
    while (v.length <= desc.index) v.push(undefined);
    v[desc.index] = value;
  }
}
