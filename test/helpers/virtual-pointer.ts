// Gives a headless sway seat a pointer (wlroots' virtual-pointer protocol) that a test moves and clicks, so pointer
// focus, button serials and drag and drop exist without any input device.
import { WaylandTestClient } from "./wayland-test-client.ts";

/** linux/input-event-codes.h */
export const BTN_LEFT = 0x110;

/** zwlr_virtual_pointer_manager_v1 and zwlr_virtual_pointer_v1 opcodes (wlr-virtual-pointer-unstable-v1.xml order). */
const MANAGER_CREATE_VIRTUAL_POINTER = 0;
const POINTER_MOTION_ABSOLUTE = 1;
const POINTER_BUTTON = 2;
const POINTER_FRAME = 4;
/** wl_pointer.button_state */
const RELEASED = 0;
const PRESSED = 1;

/** A virtual pointer on the compositor's first seat; each call returns once the compositor has handled it. */
export interface VirtualPointer {
  /** Moves to (x, y) in the output layout's pixels. */
  moveTo(x: number, y: number): Promise<void>;
  press(button?: number): Promise<void>;
  release(button?: number): Promise<void>;
  close(): void;
}

/**
 * Connects directly to the compositor at `socketPath` and creates a virtual pointer whose absolute motion spans
 * `extent` (the output layout's size). The protocol is wlroots', not in wayland-protocols: encoded by hand.
 * Create it before clients bind wl_seat.get_pointer: a pointer asked for while the seat has none stays inert.
 */
export async function addVirtualPointer(
  socketPath: string,
  extent: { width: number; height: number },
): Promise<VirtualPointer> {
  const c = WaylandTestClient.connect(socketPath);
  try {
    const reg = await c.getRegistry();
    const seat = c.bind(reg, "wl_seat", 1);
    const manager = c.bindUnlisted(reg, "zwlr_virtual_pointer_manager_v1", 1);
    const ptr = c.newId();
    c.requestUnlisted(manager, MANAGER_CREATE_VIRTUAL_POINTER, (w) => w.uint(seat).uint(ptr), [], {
      id: ptr,
      iface: "zwlr_virtual_pointer_v1",
      version: 1,
    });
    await c.roundtrip();
    if (c.error !== null) throw new Error(`virtual pointer refused: ${c.error}`);
    const t0 = Date.now();
    const time = (): number => (Date.now() - t0) & 0xffffffff;
    const button = async (code: number, state: number): Promise<void> => {
      c.requestUnlisted(ptr, POINTER_BUTTON, (w) => w.uint(time()).uint(code).uint(state));
      c.requestUnlisted(ptr, POINTER_FRAME, () => {});
      await c.roundtrip();
    };
    return {
      async moveTo(x, y) {
        c.requestUnlisted(ptr, POINTER_MOTION_ABSOLUTE, (w) =>
          w.uint(time()).uint(Math.round(x)).uint(Math.round(y)).uint(extent.width).uint(extent.height),
        );
        c.requestUnlisted(ptr, POINTER_FRAME, () => {});
        await c.roundtrip();
      },
      press: (code = BTN_LEFT) => button(code, PRESSED),
      release: (code = BTN_LEFT) => button(code, RELEASED),
      close: () => c.close(),
    };
  } catch (err) {
    c.close();
    throw err;
  }
}
