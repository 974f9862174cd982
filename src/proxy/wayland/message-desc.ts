// Looking up a Wayland message's descriptor by interface and name, once per session, so hooks match by identity.
import type { MessageDesc, ProtocolRegistry } from "../../wire/wayland/protocol-registry.ts";

/** A message's descriptor, looked up once per session so hooks match by identity on the hot path. */
export function msg(
  registry: ProtocolRegistry,
  iface: string,
  name: string,
  event: boolean,
): MessageDesc | undefined {
  const i = registry.get(iface);
  return (event ? i?.events : i?.requests)?.find((m) => m.name === name);
}
