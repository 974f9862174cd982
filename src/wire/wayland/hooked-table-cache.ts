// One table per (registry, set of hooked messages), shared by every connection of a proxy that hooks the same ones.
import type { MessageTable } from "./message-table.ts";
import type { ProtocolRegistry } from "./protocol-registry.ts";

/**
 * A cache of tables built from a proxy's hooks (PassThroughTable, FastScanTable). Keyed by the hooked messages
 * themselves (and a variant tag), so a connection that hooks something else never gets a table that would forward
 * one of its hooked messages undecoded.
 */
export class HookedTableCache<R> {
  readonly #byRegistry = new WeakMap<ProtocolRegistry, Map<string, R>>();

  get<T>(
    registry: ProtocolRegistry,
    requests: MessageTable<T>,
    events: MessageTable<T>,
    variant: string,
    make: () => R,
  ): R {
    const key = `${registry.messageCount}:${requests.indexes.join(",")}:${events.indexes.join(",")}:${variant}`;
    let byKey = this.#byRegistry.get(registry);
    if (byKey === undefined) {
      byKey = new Map();
      this.#byRegistry.set(registry, byKey);
    }
    let table = byKey.get(key);
    if (table === undefined) {
      table = make();
      byKey.set(key, table);
    }
    return table;
  }
}
