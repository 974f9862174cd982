// One connection's view of the host's globals through a registry policy: which to hide, which to cap, which binds to refuse.
import type { ProtocolRegistry } from "../../wire/wayland/protocol-registry.ts";
import { decideGlobal, type RegistryPolicy } from "./registry-policy.ts";

/** What to do with one wl_registry.global event. */
export type GlobalAction =
  | { readonly kind: "forward" }
  | { readonly kind: "hide"; readonly reason: string }
  | { readonly kind: "rewrite"; readonly version: number };

/**
 * Tracks the globals shown to one client (by name, for every registry it makes) so that a bind can be judged as
 * a compositor judges it, against what this client was actually offered. Pure: the caller does the I/O.
 */
export class GlobalFilter {
  private readonly shown = new Map<number, { iface: string; version: number }>();
  private readonly hidden = new Set<number>();

  constructor(
    private readonly policy: RegistryPolicy,
    private readonly registry: ProtocolRegistry,
  ) {}

  /** wl_registry.global(name, iface, version) from the host. */
  onGlobal(name: number, iface: string, hostVersion: number): GlobalAction {
    const known = this.registry.get(iface);
    const d = decideGlobal(this.policy, iface, hostVersion, known?.known === true ? known.version : 0);
    if (!d.show) {
      this.hidden.add(name);
      return { kind: "hide", reason: d.reason };
    }
    this.shown.set(name, { iface, version: d.version });
    return d.version === hostVersion ? { kind: "forward" } : { kind: "rewrite", version: d.version };
  }

  /** wl_registry.global_remove(name): true when the global was hidden, so the removal must be hidden too. */
  onGlobalRemove(name: number): boolean {
    return this.hidden.delete(name);
  }

  /**
   * wl_registry.bind(name, iface, version): undefined when allowed, else the message a compositor sends with
   * invalid_object (wayland-server.c registry_bind's wording).
   */
  checkBind(name: number, iface: string, version: number): string | undefined {
    const g = this.shown.get(name);
    if (g === undefined || g.iface !== iface) return `invalid global ${iface} (${name})`;
    if (version === 0 || version > g.version) {
      return `invalid version for global ${iface} (${name}): have ${g.version}, wanted ${version}`;
    }
    return undefined;
  }
}
