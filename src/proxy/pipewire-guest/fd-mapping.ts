// Which PipeWire messages may carry fds across cross-domain, and what each fd becomes (docs/pipewire-guest.md table).
import { EVENTS, Iface, METHODS, type MessageSpec } from "../../wire/pipewire/protocol.ts";

/** How a host fd of a server→client message is handed to the guest client. */
export type HostFdRole =
  /** Core.AddMem: host memory (memfd/dmabuf) → a mappable blob fd, read-only unless the daemon shares it writable. */
  | "memory"
  /** The host signals, the client waits: the host eventfd item feeds a local eventfd (READ_EVENTFD_NEW). */
  | "signal-from-host"
  /** The client signals, the host waits: a local eventfd whose values are written to the host item (WRITE). */
  | "signal-to-host";

/** One fd-carrying event: its fd fields (argument index → role) and how many fds it may carry. */
export interface HostFdEvent {
  readonly name: string;
  /** Argument index of each Fd field and the role of the fd it references. */
  readonly fields: ReadonlyArray<readonly [number, HostFdRole]>;
  readonly minFds: number;
  readonly maxFds: number;
}

/**
 * Server→client events that carry fds (pipewire.md §7.7), by interface and opcode:
 * - Core.AddMem(id, type, fd, flags): the memory block;
 * - ClientNode.Transport(readfd, writefd, mem_id, offset, size): readfd is what the daemon signals the client with
 *   (the client reads it), writefd is the peer the client signals when done (the client writes it);
 * - ClientNode.SetActivation(node, signalfd, mem_id, offset, size): the eventfd the client writes to wake that node.
 * Everything else with fds is refused: a new fd-carrying event needs a decision here, never a guess.
 */
export const HOST_FD_EVENTS: ReadonlyMap<string, ReadonlyMap<number, HostFdEvent>> = new Map([
  [
    Iface.Core,
    new Map([
      [
        opcodeOf(EVENTS, Iface.Core, "AddMem"),
        { name: "AddMem", fields: [[2, "memory"]], minFds: 1, maxFds: 1 },
      ],
    ]),
  ],
  [
    Iface.ClientNode,
    new Map<number, HostFdEvent>([
      [
        opcodeOf(EVENTS, Iface.ClientNode, "Transport"),
        {
          name: "Transport",
          fields: [
            [0, "signal-from-host"],
            [1, "signal-to-host"],
          ],
          minFds: 2,
          maxFds: 2,
        },
      ],
      [
        opcodeOf(EVENTS, Iface.ClientNode, "SetActivation"),
        { name: "SetActivation", fields: [[1, "signal-to-host"]], minFds: 0, maxFds: 1 },
      ],
    ]),
  ],
]);

/** PW_MEMBLOCK_FLAG_WRITABLE (src/pipewire/mem.h): the daemon lets the client write this block. */
export const MEMBLOCK_FLAG_WRITABLE = 1 << 1;

/** ClientNode.PortBuffers: the only client→server message that carries fds in libpipewire (opcode 6, not 5). */
export const PORT_BUFFERS_OPCODE = opcodeOf(METHODS, Iface.ClientNode, "PortBuffers");

/** ClientNode.PortUseBuffers: the server's buffers for a port, or (flag ALLOC) its request that the port allocate. */
export const PORT_USE_BUFFERS_OPCODE = opcodeOf(EVENTS, Iface.ClientNode, "PortUseBuffers");

function opcodeOf(
  table: Readonly<Record<string, readonly (MessageSpec | undefined)[]>>,
  iface: string,
  name: string,
): number {
  const i = (table[iface] ?? []).findIndex((m) => m?.name === name);
  if (i < 0) throw new Error(`${iface}.${name} is not in the protocol tables`);
  return i;
}
