// Drag and drop through crossway wayland-filter against headless sway, under each `dnd` mode. A virtual pointer
// (wlroots' protocol) gives the seat a pointer; two raw clients, a guest writing straight into the device (no
// crossway guest) and a host client on sway, drag to each other. Sway's own wl_data_device events say whether a
// drag reached the other side, and the data itself is carried (or not) through real pipes.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { native } from "../../src/native.ts";
import type { SelectionMode } from "../../src/proxy/wayland-filter/filter-policy.ts";
import type { Compositor } from "../helpers/compositor.ts";
import { readToEof, tempDir, writeAll } from "../helpers/crossdomain.ts";
import { useFdLeakCheck } from "../helpers/fd-leak.ts";
import { requireCommand, sleep } from "../helpers/processes.ts";
import { type RawToplevel, rawToplevel, views } from "../helpers/raw-toplevel.ts";
import { startSway } from "../helpers/sway.ts";
import { addVirtualKeyboard, type VirtualKeyboard } from "../helpers/virtual-keyboard.ts";
import { addVirtualPointer, type VirtualPointer } from "../helpers/virtual-pointer.ts";
import { startFilteredVm } from "../helpers/wayland-filter-attacks.ts";
import type { TestEvent } from "../helpers/wayland-test-client.ts";

useFdLeakCheck();

const WIDTH = 800;
const HEIGHT = 600;
/** The host client's app_id; the guest's is tagged by the filter (`NAME.guest`). */
const HOST_APP_ID = "host-drag";
const GUEST_MIME = "text/x-crossway-guest-drag";
const HOST_MIME = "text/x-crossway-host-drag";
/** wl_data_device_manager.dnd_action.copy */
const COPY = 1;
/** How long the pointer may take to enter a window sway has just placed (protocol answers, retried motions). */
const HOVER_TIMEOUT_MS = 30_000;
/** How long the filter's audit lines may take to reach its log file. */
const AUDIT_TIMEOUT_MS = 10_000;
/** sway lays a new window out on its next frame; swaymsg is asked until both are placed. */
const LAYOUT_TIMEOUT_MS = 30_000;

/** A raw toplevel with a pointer and a data device on the seat. */
interface DragClient extends RawToplevel {
  label: string;
  pointer: number;
  ddm: number;
  device: number;
}

async function dragClient(socketPath: string, appId: string): Promise<DragClient> {
  const ids = { pointer: 0, ddm: 0, device: 0 };
  const t = await rawToplevel(socketPath, "drag test", appId, (c, reg) => {
    const seat = c.bind(reg, "wl_seat", 5);
    ids.pointer = c.newId();
    c.request(seat, "wl_seat", "get_pointer", (w) => w.uint(ids.pointer));
    ids.ddm = c.bind(reg, "wl_data_device_manager", 3);
    ids.device = c.newId();
    c.request(ids.ddm, "wl_data_device_manager", "get_data_device", (w) => w.uint(ids.device).uint(seat));
  });
  return { ...t, ...ids, label: appId };
}

/** The centre of each named view, once sway shows them all at their floating positions. */
async function centres(sway: Compositor, appIds: string[]): Promise<Map<string, { x: number; y: number }>> {
  const deadline = Date.now() + LAYOUT_TIMEOUT_MS;
  for (;;) {
    const found = new Map<string, { x: number; y: number }>();
    for (const v of await views(sway)) {
      if (v.app_id != null && appIds.includes(v.app_id) && v.rect !== undefined && v.rect.width > 0) {
        found.set(v.app_id, { x: v.rect.x + v.rect.width / 2, y: v.rect.y + v.rect.height / 2 });
      }
    }
    if (found.size === appIds.length) return found;
    if (Date.now() > deadline) {
      throw new Error(`sway did not show ${appIds.join(", ")} within ${LAYOUT_TIMEOUT_MS} ms`);
    }
    await sleep(100);
  }
}

/** Events of `c` from index `from` on that match. */
function since(c: DragClient, from: number, iface: string, name: string, objectId?: number): TestEvent[] {
  return c.c.events
    .slice(from)
    .filter(
      (e) => e.iface === iface && e.name === name && (objectId === undefined || e.objectId === objectId),
    );
}

/** Events as WAYLAND_DEBUG-like text, for failure messages. */
function show(events: TestEvent[]): string {
  return events.map((e) => `${e.iface}@${e.objectId}.${e.name}(${e.args.join(", ")})`).join(" ");
}

/** Whether `c`'s pointer is on its surface now: its last wl_pointer enter/leave is an enter. */
function hovered(c: DragClient): boolean {
  const last = c.c.events
    .filter((e) => e.objectId === c.pointer && (e.name === "enter" || e.name === "leave"))
    .at(-1);
  return last?.name === "enter" && last.args[1] === c.surface;
}

/**
 * Moves the pointer onto `c`'s window until `c` gets wl_pointer.enter. sway places a window once the client's
 * configure round has settled (these raw clients leave later configures unanswered, so sway's transaction
 * timeout applies), and only a motion gives the new surface under the pointer its enter: so move, round-trip,
 * and move again by a pixel until the compositor says so.
 */
async function hover(pointer: VirtualPointer, c: DragClient, at: { x: number; y: number }): Promise<void> {
  const deadline = Date.now() + HOVER_TIMEOUT_MS;
  for (let k = 0; ; k++) {
    await pointer.moveTo(at.x + (k % 2), at.y);
    await c.c.roundtrip();
    if (hovered(c)) return;
    if (Date.now() > deadline) {
      throw new Error(
        `the pointer at (${at.x}, ${at.y}) never entered the ${c.label} window within ${HOVER_TIMEOUT_MS} ms; its events: ${show(c.c.events.filter((e) => e.iface !== "wl_registry" && e.iface !== "wl_shm"))}`,
      );
    }
    await sleep(50);
  }
}

/** What one drag from `src` to `dst` came to. */
interface DragResult {
  /** The mime types of the offer sway announced to `dst` with wl_data_device.enter; null: no enter. */
  offered: string[] | null;
  /** What `dst` read from the offer (it accepts, sets copy and receives whenever it is entered). */
  read: string | null;
  /** wl_data_source events `src`'s source got, in order. */
  sourceEvents: string[];
  /** The mime types of the wl_data_source.target events that named one (a target accepted the data). */
  accepted: unknown[];
  /** Whether `dst` got any wl_data_device.enter during the drag or after it (the pointer did reach it). */
  dstEntered: boolean;
}

/**
 * Presses on `src`'s window, starts a drag of `mime` with the press's serial, moves onto `dst`'s window, lets
 * `dst` take part if sway entered it, and releases. `payload` is what `src` serves on wl_data_source.send.
 */
async function drag(
  pointer: VirtualPointer,
  src: DragClient,
  srcAt: { x: number; y: number },
  dst: DragClient,
  dstAt: { x: number; y: number },
  mime: string,
  payload: string,
): Promise<DragResult> {
  await hover(pointer, src, srcAt);
  const s0 = src.c.events.length;
  await pointer.press();
  const press = await src.c
    .waitFor(
      (e) =>
        src.c.events.indexOf(e) >= s0 && e.objectId === src.pointer && e.name === "button" && e.args[3] === 1,
      20_000,
    )
    .catch((err: Error) => {
      throw new Error(
        `no wl_pointer.button press at (${srcAt.x}, ${srcAt.y}) (${err.message}); events: ${show(src.c.events.slice(s0))}; input events before: ${show(src.c.events.slice(0, s0).filter((e) => e.iface === "wl_pointer" || e.iface === "wl_seat"))}`,
      );
    });
  const source = src.c.newId();
  src.c.request(src.ddm, "wl_data_device_manager", "create_data_source", (w) => w.uint(source));
  src.c.request(source, "wl_data_source", "offer", (w) => w.string(mime));
  src.c.request(source, "wl_data_source", "set_actions", (w) => w.uint(COPY));
  src.c.request(src.device, "wl_data_device", "start_drag", (w) =>
    w
      .uint(source)
      .uint(src.surface)
      .uint(0)
      .uint(press.args[0] as number),
  );
  await src.c.roundtrip();
  const d0 = dst.c.events.length;
  await pointer.moveTo(dstAt.x, dstAt.y);
  // sway sends enter while it handles the motion, so it is ahead of the answer to dst's next sync.
  await dst.c.roundtrip();
  const enter = since(dst, d0, "wl_data_device", "enter", dst.device)[0];
  let offered: string[] | null = null;
  let read: string | null = null;
  if (enter !== undefined) {
    const offer = enter.args[4] as number;
    offered = since(dst, 0, "wl_data_offer", "offer", offer).map((e) => e.args[0] as string);
    dst.c.request(offer, "wl_data_offer", "accept", (w) => w.uint(enter.args[0] as number).string(mime));
    dst.c.request(offer, "wl_data_offer", "set_actions", (w) => w.uint(COPY).uint(COPY));
    const [r, w] = native.pipe2();
    try {
      dst.c.request(offer, "wl_data_offer", "receive", (m) => m.string(mime).fd(w), [w]);
      native.close(w);
      // Once sway has answered dst's sync it has handled the receive, and any wl_data_source.send it made is
      // ahead of the answer to src's next sync: src serves the data if (and only if) the receive got through.
      await dst.c.roundtrip();
      await src.c.roundtrip();
      const send = since(src, s0, "wl_data_source", "send", source)[0];
      if (send !== undefined) {
        const fd = src.c.takeFd(send.args[1] as number);
        try {
          await writeAll(fd, new TextEncoder().encode(payload));
        } finally {
          native.close(fd);
        }
      }
      read = new TextDecoder().decode(await readToEof(r, 1 << 20));
    } finally {
      native.close(r);
    }
  }
  await pointer.release();
  await src.c.roundtrip();
  await dst.c.roundtrip();
  // The source's last word: dnd_drop_performed (+ dnd_finished) or cancelled, sent as sway handles the release.
  await src.c.waitFor(
    (e) => e.objectId === source && (e.name === "cancelled" || e.name === "dnd_drop_performed"),
    20_000,
  );
  await src.c.roundtrip();
  const sourceEvents = src.c.events.slice(s0).filter((e) => e.objectId === source);
  src.c.request(source, "wl_data_source", "destroy", () => {});
  await src.c.roundtrip();
  return {
    offered,
    read,
    sourceEvents: sourceEvents.map((e) => e.name),
    accepted: sourceEvents.filter((e) => e.name === "target" && e.args[0] !== null).map((e) => e.args[0]),
    // The pointer does reach dst's surface: a refused drag's missing enter is not a missed window.
    dstEntered: await hover(pointer, dst, dstAt).then(
      () => since(dst, d0, "wl_data_device", "enter", dst.device).length > 0,
    ),
  };
}

describe("crossway wayland-filter drag and drop against headless sway (virtual pointer)", () => {
  let sway: Compositor;
  let keyboard: VirtualKeyboard;
  let pointer: VirtualPointer;
  let tmp: ReturnType<typeof tempDir>;

  beforeAll(async () => {
    requireCommand("swaymsg", "sway");
    tmp = tempDir("crossway-wlfilter-dnd-");
    // Two small floating windows side by side, where the pointer is sent.
    sway = await startSway({
      width: WIDTH,
      height: HEIGHT,
      extraConfig: [
        'for_window [app_id="guest$"] floating enable, move absolute position 100 200',
        `for_window [app_id="^${HOST_APP_ID}$"] floating enable, move absolute position 500 200`,
      ],
    });
    keyboard = await addVirtualKeyboard(sway.socketPath);
    // Before any client asks wl_seat for its pointer (one asked for while the seat has none stays inert).
    pointer = await addVirtualPointer(sway.socketPath, { width: WIDTH, height: HEIGHT });
  });

  afterAll(async () => {
    pointer?.close();
    keyboard?.close();
    await sway?.stop();
    tmp?.remove();
  });

  const MODES: SelectionMode[] = ["off", "to-guest", "from-guest", "both"];
  for (const [i, mode] of MODES.entries()) {
    const fromGuest = mode === "from-guest" || mode === "both";
    const toGuest = mode === "to-guest" || mode === "both";
    it(`dnd "${mode}": guest→host ${fromGuest ? "reaches" : "never reaches"} sway, host→guest data ${toGuest ? "reaches" : "never reaches"} the guest`, async () => {
      const name = `dnd${i}`;
      const vm = await startFilteredVm(sway, tmp.dir, name, { name, dnd: mode });
      let guest: DragClient | undefined;
      let host: DragClient | undefined;
      try {
        guest = await dragClient(vm.bridge.socketPath, "guest");
        host = await dragClient(sway.socketPath, HOST_APP_ID);
        const at = await centres(sway, [`${name}.guest`, HOST_APP_ID]);
        const g = at.get(`${name}.guest`) as { x: number; y: number };
        const h = at.get(HOST_APP_ID) as { x: number; y: number };
        const dndAudits = () => vm.filter.auditRecords().filter((r) => r.rule === "dnd");
        /** The filter writes its audit lines to its log asynchronously: wait until `n` dnd lines are there. */
        const awaitAudits = async (n: number) => {
          const deadline = Date.now() + AUDIT_TIMEOUT_MS;
          while (dndAudits().length < n && Date.now() < deadline) await sleep(50);
          return dndAudits();
        };

        // Guest → host: start_drag passes the filter only when the VM may offer.
        const guestData = `guest-${randomBytes(6).toString("hex")}`;
        const out = await drag(pointer, guest, g, host, h, GUEST_MIME, guestData);
        if (fromGuest) {
          expect(out.offered).toEqual([GUEST_MIME]);
          expect(out.read).toBe(guestData);
          expect(out.accepted).toContain(GUEST_MIME);
          expect(out.sourceEvents).toContain("dnd_drop_performed");
          expect(dndAudits()).toEqual([]);
        } else {
          // No drag ever started in sway: the host saw the pointer come, never a data_device.enter.
          expect(out.offered).toBeNull();
          expect(out.dstEntered).toBe(false);
          // The filter's answer to the guest, as sway's to a start_drag it refuses.
          expect(out.sourceEvents).toEqual(["cancelled"]);
          expect(await awaitAudits(1)).toEqual([
            expect.objectContaining({
              vm: name,
              object: expect.stringMatching(/^wl_data_device@\d+$/),
              message: "start_drag",
              action: "dropped",
            }),
          ]);
        }
        const before = dndAudits().length;

        // Host → guest: sway shows the guest the drag; reading it and answering it pass only when it may read.
        const hostData = `host-${randomBytes(6).toString("hex")}`;
        const into = await drag(pointer, host, h, guest, g, HOST_MIME, hostData);
        expect(into.offered).toEqual([HOST_MIME]);
        if (toGuest) {
          expect(into.read).toBe(hostData);
          expect(into.accepted).toContain(HOST_MIME);
          expect(into.sourceEvents).toEqual(expect.arrayContaining(["send", "dnd_drop_performed"]));
          expect(dndAudits()).toHaveLength(before);
        } else {
          expect(into.read).toBe("");
          // The host source never saw a target, an action or a send: sway cancels the drop.
          expect(into.accepted).toEqual([]);
          expect(into.sourceEvents).not.toContain("send");
          expect(into.sourceEvents).not.toContain("dnd_drop_performed");
          expect(into.sourceEvents.at(-1)).toBe("cancelled");
          expect(
            (await awaitAudits(before + 2))
              .slice(before)
              .map((r) => r.message)
              .sort(),
          ).toEqual(["accept", "receive"]);
        }
        // The guest's connection is intact after it all.
        await guest.c.roundtrip();
        expect(guest.c.error).toBeNull();
      } finally {
        guest?.c.close();
        host?.c.close();
        await vm.bridge.idle();
        await vm.stop();
      }
    });
  }
});
