// A scripted Wayland host for timing one protocol property exactly: it answers wl_display.sync, and announces globals
// or hangs up when a test says so.
import { createServer, type Server, type Socket } from "node:net";
import { MessageWriter } from "../../src/wire/wayland/message-writer.ts";

/**
 * What the host does to its first `count` connections as soon as it accepts them, before any request: close them, or
 * speak first (an event nobody asked for; no compositor does either to a healthy client).
 */
export interface FirstConnections {
  readonly count: number;
  readonly action: "hang-up" | "speak";
}

/**
 * A scripted Wayland host for timing one protocol property exactly (a compositor speaks unasked only when it pleases):
 * it answers wl_display.sync with wl_callback.done and delete_id, remembers a connection's wl_registry, and announces
 * a global on it when told.
 */
export class ScriptedHost {
  private readonly server: Server;
  private readonly registries = new Map<Socket, number>();
  private readonly sockets = new Set<Socket>();
  /** Connections accepted so far, and how many of them got `first.action`. */
  accepted = 0;
  misbehaved = 0;

  private constructor(
    server: Server,
    private readonly first: FirstConnections,
  ) {
    this.server = server;
  }

  static async listen(path: string, opts: { first?: FirstConnections } = {}): Promise<ScriptedHost> {
    const server = createServer();
    const host = new ScriptedHost(server, opts.first ?? { count: 0, action: "hang-up" });
    server.on("connection", (s) => host.serve(s));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => resolve());
    });
    return host;
  }

  /** wl_registry.global(name, iface, version) on every connection that made a registry; how many got it. */
  announce(name: number, iface: string, version: number): number {
    for (const [s, registry] of this.registries) {
      s.write(new MessageWriter().begin(registry, 0).uint(name).string(iface).uint(version).end().bytes());
    }
    return this.registries.size;
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private serve(s: Socket): void {
    this.accepted++;
    s.on("error", () => {});
    if (this.misbehaved < this.first.count) {
      this.misbehaved++;
      if (this.first.action === "hang-up") {
        s.destroy();
        return;
      }
      // wl_display.delete_id(3), which no client asked for.
      s.write(new MessageWriter().begin(1, 1).uint(3).end().bytes());
    }
    this.sockets.add(s);
    let buf = Buffer.alloc(0);
    s.on("close", () => {
      this.registries.delete(s);
      this.sockets.delete(s);
    });
    s.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 8) {
        const size = buf.readUInt32LE(4) >>> 16;
        if (size < 8 || buf.length < size) break;
        const [object, opcode, arg] = [
          buf.readUInt32LE(0),
          buf.readUInt32LE(4) & 0xffff,
          buf.readUInt32LE(8),
        ];
        buf = buf.subarray(size);
        if (object !== 1) continue;
        if (opcode === 0) {
          // sync: done, then delete_id, in one write (one RECEIVE the guest's fast path takes whole).
          const w = new MessageWriter().begin(arg, 0).uint(1).end().begin(1, 1).uint(arg).end();
          s.write(w.bytes());
        } else if (opcode === 1) {
          this.registries.set(s, arg);
        }
      }
    });
  }
}
