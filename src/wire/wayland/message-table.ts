// A value per message descriptor (a connection's hooks), read by MessageDesc.index: one array read per message.
import type { MessageDesc, ProtocolRegistry } from "./protocol-registry.ts";

/**
 * Values keyed by the {@link MessageDesc}s of one registry. A proxy looks its hook up once per message; a Map keyed
 * by the descriptor cost a hash lookup there (2% of a request burst's CPU in perf), an array sized for the
 * registry's messages costs one bounds-checked read. Messages added to the registry later (extra XML) still work:
 * their reads fall past the end.
 */
export class MessageTable<T> {
  readonly #values: (T | undefined)[];
  /** The indexes that hold a value, in the order they were set (a key for tables derived from this one). */
  readonly indexes: number[] = [];

  constructor(registry: ProtocolRegistry) {
    this.#values = new Array<T | undefined>(registry.messageCount).fill(undefined);
  }

  get(desc: MessageDesc): T | undefined {
    return this.#values[desc.index];
  }

  set(desc: MessageDesc, value: T): void {
    const v = this.#values;
    while (v.length <= desc.index) v.push(undefined);
    if (v[desc.index] === undefined) this.indexes.push(desc.index);
    v[desc.index] = value;
  }
}
