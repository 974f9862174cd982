// Which guest ports the daemon asked to allocate their own buffers, and why a ClientNode.PortBuffers with fds is refused.
import { CrosswayError } from "../../errors.ts";
import type { Pod } from "../../wire/pipewire/pod-types.ts";
import { expectInt } from "../../wire/pipewire/protocol.ts";

/** SPA_NODE_BUFFERS_FLAG_ALLOC (spa/node/node.h): the port must allocate the buffers and answer with PortBuffers. */
export const NODE_BUFFERS_FLAG_ALLOC = 1 << 0;

/** spa_data_type (spa/buffer/buffer.h), for the refusal's wording. */
const DATA_TYPES = ["Invalid", "MemPtr", "MemFd", "DmaBuf", "MemId", "SyncObj"];

/**
 * The ALLOC requests of one client's nodes, from the server's ClientNode.PortUseBuffers events. A client sends
 * PortBuffers with fds only in answer to one (remote-node.c client_node_port_use_buffers); through crossway's host
 * filter there is never one, because the filter strips SPA_PORT_FLAG_CAN_ALLOC_BUFFERS from every PortUpdate and
 * the daemon then allocates every buffer itself (client-node-update.ts).
 */
export class AllocRequests {
  /** "node/direction/port/mix" → the n_buffers the daemon asked for. */
  private readonly pending = new Map<string, number>();

  /** S→C ClientNode.PortUseBuffers(direction, port_id, mix_id, flags, n_buffers, ...) on node `nodeId`. */
  onPortUseBuffers(nodeId: number, fields: readonly Pod[]): void {
    const key = portKey(nodeId, fields, "PortUseBuffers");
    const flags = expectInt(fields[3], "PortUseBuffers flags");
    if ((flags & NODE_BUFFERS_FLAG_ALLOC) !== 0)
      this.pending.set(key, expectInt(fields[4], "PortUseBuffers n_buffers"));
    else this.pending.delete(key);
  }

  /** How many buffers the daemon asked the port a PortBuffers body names to allocate, or undefined: none. */
  requested(nodeId: number, fields: readonly Pod[]): number | undefined {
    return this.pending.get(portKey(nodeId, fields, "PortBuffers"));
  }

  /** The node's id was removed: its requests go with it. */
  forgetNode(nodeId: number): void {
    for (const k of this.pending.keys()) if (k.startsWith(`${nodeId}/`)) this.pending.delete(k);
  }

  /**
   * The error for an unrequested C→S ClientNode.PortBuffers(direction, port_id, mix_id, n_buffers, (n_datas, (type,
   * fd, flags, mapoffset, maxsize)*)*) carrying `nFds` fds: which port and which data types.
   */
  refusal(what: string, nodeId: number, fields: readonly Pod[], nFds: number): CrosswayError {
    const key = portKey(nodeId, fields, "PortBuffers");
    const [direction, port, mix] = key.split("/").slice(1);
    const where = `${what}(direction ${direction}, port ${port}, mix ${mix})`;
    const types = dataTypes(fields);
    const reason =
      "the daemon never asked this port to allocate (no PortUseBuffers with SPA_NODE_BUFFERS_FLAG_ALLOC on it; " +
      "crossway's host filter strips SPA_PORT_FLAG_CAN_ALLOC_BUFFERS, so behind it the daemon allocates every buffer)";
    return new CrosswayError(
      "CW_PWG_CLIENT_FD",
      `${where}: ${nFds} client-allocated buffer fds (data types ${types.join(", ") || "none"}); ${reason}`,
      { iface: "ClientNode", objectId: nodeId, value: nFds },
    );
  }
}

/** "node/direction/port/mix" of a PortUseBuffers or PortBuffers body. */
export function portKey(nodeId: number, fields: readonly Pod[], what: string): string {
  const direction = expectInt(fields[0], `${what} direction`);
  const port = expectInt(fields[1], `${what} port_id`);
  const mix = expectInt(fields[2], `${what} mix_id`);
  return `${nodeId}/${direction}/${port}/${mix}`;
}

/** The distinct data types a PortBuffers body names (its shape was checked only as PODs: read defensively). */
function dataTypes(fields: readonly Pod[]): string[] {
  const out = new Set<string>();
  const nBuffers = fields[3]?.t === "int" ? fields[3].v : 0;
  let at = 4;
  for (let b = 0; b < nBuffers && at < fields.length; b++) {
    const d = fields[at++];
    const nDatas = d?.t === "int" ? d.v : 0;
    for (let i = 0; i < nDatas && at + 4 < fields.length; i++, at += 5) {
      const t = fields[at];
      const v = t?.t === "id" || t?.t === "int" ? Number(t.v) : -1;
      out.add(DATA_TYPES[v] ?? `type ${v}`);
    }
  }
  return [...out];
}
