// Run in the VM tier's guest: writes N wl_display.sync requests in one write (12 bytes each, so crossway guest reads
// several kilobytes at once and sends them as several SENDs batched in one EXECBUFFER through the real kernel and
// QEMU's rutabaga), then reads until every callback is done. Prints one JSON line: what was sent, which callbacks
// came back and in what order, and how long it took.
// usage: node --import tsx test/vm/sync-burst-probe.ts [requests]
import { connect } from "node:net";
import { join } from "node:path";

const COUNT = Number(process.argv[2] ?? 1000);
const runtime = process.env.XDG_RUNTIME_DIR ?? "";
const display = process.env.WAYLAND_DISPLAY ?? "wayland-0";
const path = display.startsWith("/") ? display : join(runtime, display);

// wl_display.sync (object 1, opcode 0, 12 bytes) with new ids 2, 3, ... in one buffer.
const burst = Buffer.alloc(12 * COUNT);
for (let i = 0; i < COUNT; i++) {
  burst.writeUInt32LE(1, 12 * i);
  burst.writeUInt32LE((12 << 16) | 0, 12 * i + 4);
  burst.writeUInt32LE(2 + i, 12 * i + 8);
}

const started = performance.now();
const sock = connect(path);
let pending = Buffer.alloc(0);
const done: number[] = [];
const deleted: number[] = [];
let errors = 0;
const finish = (why: string) => {
  sock.destroy();
  const inOrder = done.every((id, i) => id === 2 + i);
  process.stdout.write(
    `${JSON.stringify({ why, sent: COUNT, done: done.length, deleted: deleted.length, inOrder, errors, ms: Math.round(performance.now() - started) })}\n`,
  );
  process.exit(why === "complete" && inOrder && errors === 0 ? 0 : 1);
};
const timer = setTimeout(() => finish("timeout"), 60_000);
sock.on("connect", () => sock.write(burst));
sock.on("error", (err) => finish(`socket error: ${err.message}`));
sock.on("close", () => finish("closed"));
sock.on("data", (chunk: Buffer) => {
  pending = Buffer.concat([pending, chunk]);
  while (pending.length >= 8) {
    const id = pending.readUInt32LE(0);
    const word = pending.readUInt32LE(4);
    const size = word >>> 16;
    const opcode = word & 0xffff;
    if (size < 8 || pending.length < size) break;
    if (id === 1 && opcode === 0)
      errors++; // wl_display.error
    else if (id === 1 && opcode === 1)
      deleted.push(pending.readUInt32LE(8)); // wl_display.delete_id
    else if (id >= 2 && opcode === 0) done.push(id); // wl_callback.done
    pending = pending.subarray(size);
  }
  if (done.length === COUNT && deleted.length === COUNT) {
    clearTimeout(timer);
    finish("complete");
  }
});
