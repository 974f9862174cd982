// Observing a real PipeWire daemon from outside the filter: objects per unfiltered pw-dump, and its open fd count.
import { readdirSync, readFileSync } from "node:fs";
import { run, waitFor } from "./processes.ts";

/** One pw-dump object, reduced to what the tests compare. */
export interface DumpObject {
  readonly id: number;
  readonly type: string;
  readonly props: Record<string, unknown>;
}

/** One object of pw-dump's JSON; a later array's entry with `info: null` says the object was removed. */
interface RawDumpObject {
  id: number;
  type?: string;
  info?: { props?: Record<string, unknown> } | null;
  props?: Record<string, unknown>;
}

/**
 * Runs pw-dump with `env` (unfiltered or through a filter) and returns its objects. pw-dump prints a second array
 * when the graph changed while it dumped (pw-dump.c on_core_done dumps on every matching done before its loop
 * quits: seen while a test camera started): later arrays update earlier ones by id, `info: null` removes.
 */
export async function pwDump(env: Record<string, string>): Promise<DumpObject[]> {
  const r = await run("pw-dump", [], { env, timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`pw-dump failed (${r.code}): ${r.stderr.toString().slice(0, 500)}`);
  const byId = new Map<number, RawDumpObject>();
  for (const doc of dumpDocuments(r.stdout.toString())) {
    for (const o of doc) {
      if (o.info === null) byId.delete(o.id);
      else byId.set(o.id, { ...byId.get(o.id), ...o });
    }
  }
  return [...byId.values()].map((o) => ({
    id: o.id,
    type: (o.type ?? "").replace("PipeWire:Interface:", ""),
    props: o.info?.props ?? o.props ?? {},
  }));
}

/** pw-dump's top-level arrays: each is pretty-printed with its closing "]" alone at the start of a line. */
function dumpDocuments(text: string): RawDumpObject[][] {
  const docs: RawDumpObject[][] = [];
  let start = 0;
  for (const m of text.matchAll(/^\]\s*$/gm)) {
    const end = (m.index as number) + 1;
    docs.push(JSON.parse(text.slice(start, end)) as RawDumpObject[]);
    start = end;
  }
  if (text.slice(start).trim() !== "")
    throw new Error(`pw-dump: unterminated output: ${text.slice(start, start + 200)}`);
  return docs;
}

/** A comparable snapshot of the daemon's non-client objects ("id Type name"). Clients come and go with tests. */
export async function daemonObjects(env: Record<string, string>): Promise<string[]> {
  const objs = await pwDump(env);
  return objs
    .filter((o) => o.type !== "Client")
    .map(
      (o) =>
        `${o.id} ${o.type} ${String(o.props["node.name"] ?? o.props["factory.name"] ?? o.props["metadata.name"] ?? "")}`,
    )
    .sort();
}

/** The pid of the `pipewire` process among `pids`. */
export function pipewirePid(pids: readonly number[]): number {
  for (const pid of pids) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "pipewire") return pid;
    } catch {
      // Gone.
    }
  }
  throw new Error(`no pipewire process among ${pids.join(",")}`);
}

/** Open fds of a process (/proc/<pid>/fd). */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/**
 * `pid`'s fd count once it has held still for `holdMs`: a baseline must not include the fds of a connection the
 * process is still tearing down (the guest, device, filter and daemon each close theirs in their own time).
 */
export async function steadyFdCount(pid: number, holdMs = 500): Promise<number> {
  let n = fdCount(pid);
  let since = Date.now();
  return waitFor(
    `the fd count of pid ${pid} to hold still`,
    () => {
      const now = fdCount(pid);
      if (now !== n) {
        n = now;
        since = Date.now();
      }
      return Date.now() - since >= holdMs ? n : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 20 },
  );
}

/** Waits until `pid`'s fd count equals `want` (disconnects are processed asynchronously); returns the last count. */
export async function settleFdCount(pid: number, want: number, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let n = fdCount(pid);
  while (n !== want && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    n = fdCount(pid);
  }
  return n;
}

/**
 * Waits until the daemon shows at least `count` links in state "active" from node `outputNode` into a node named
 * `inputNode` (pw-dump, unfiltered `env`): a recorder is ready when its links carry data, not when it has started.
 */
export async function waitForActiveLinks(
  env: Record<string, string>,
  outputNode: string,
  inputNode: string,
  count: number,
): Promise<void> {
  await waitFor(
    `${count} active links ${outputNode} -> ${inputNode}`,
    async () => {
      const r = await run("pw-dump", [], { env, timeoutMs: 30_000 });
      if (r.code !== 0) return undefined;
      const objs = JSON.parse(r.stdout.toString()) as Array<{
        id: number;
        type: string;
        info?: {
          props?: Record<string, unknown>;
          state?: string;
          "output-node-id"?: number;
          "input-node-id"?: number;
        };
      }>;
      const name = new Map(objs.map((o) => [o.id, String(o.info?.props?.["node.name"] ?? "")]));
      const active = objs.filter(
        (o) =>
          o.type === "PipeWire:Interface:Link" &&
          o.info?.state === "active" &&
          name.get(o.info["output-node-id"] ?? -1) === outputNode &&
          name.get(o.info["input-node-id"] ?? -1) === inputNode,
      );
      return active.length >= count ? true : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 100 },
  );
}

/**
 * Waits until node `name` and one of its ports are both in the daemon's graph (pw-dump with the unfiltered `env`):
 * a consumer or filter that looks between the two would not know the port yet.
 */
export async function waitForNodeWithPort(
  env: Record<string, string>,
  name: string,
  opts: { timeoutMs: number; abort: () => string | undefined },
): Promise<void> {
  await waitFor(
    `the ${name} node and its port`,
    async () => {
      const objs = await pwDump(env);
      const node = objs.find((o) => o.type === "Node" && o.props["node.name"] === name);
      if (node === undefined) return undefined;
      return objs.some((o) => o.type === "Port" && Number(o.props["node.id"]) === node.id) ? true : undefined;
    },
    { timeoutMs: opts.timeoutMs, intervalMs: 100, abort: opts.abort },
  );
}
