// Gives a headless sway seat a keyboard (wlroots' virtual-keyboard protocol), so keymaps and focus exist in tests.
import { native } from "../../src/native.ts";
import { WaylandTestClient } from "./wayland-test-client.ts";

/**
 * A US layout resolved by xkbcommon from the system's xkb data (xkb-data, a dependency of libxkbcommon): sway
 * compiles it with xkb_keymap_new_from_string, which follows the includes.
 */
const KEYMAP = `xkb_keymap {
  xkb_keycodes { include "evdev+aliases(qwerty)" };
  xkb_types { include "complete" };
  xkb_compat { include "complete" };
  xkb_symbols { include "pc+us+inet(evdev)" };
};
`;

/** A connected virtual keyboard; keep it open for as long as the seat should have a keyboard. */
export interface VirtualKeyboard {
  close(): void;
}

/**
 * Connects directly to the compositor at `socketPath` and creates a virtual keyboard on its first seat
 * (zwp_virtual_keyboard_manager_v1.create_virtual_keyboard, opcode 0; zwp_virtual_keyboard_v1.keymap, opcode 0,
 * format 1 = xkb_v1). The protocol is wlroots', not in wayland-protocols, so the requests are encoded by hand.
 */
export async function addVirtualKeyboard(socketPath: string): Promise<VirtualKeyboard> {
  const c = WaylandTestClient.connect(socketPath);
  try {
    const reg = await c.getRegistry();
    const seat = c.bind(reg, "wl_seat", 1);
    const manager = c.bindUnlisted(reg, "zwp_virtual_keyboard_manager_v1", 1);
    const kbd = c.newId();
    c.requestUnlisted(manager, 0, (w) => w.uint(seat).uint(kbd), [], {
      id: kbd,
      iface: "zwp_virtual_keyboard_v1",
      version: 1,
    });
    const text = new TextEncoder().encode(`${KEYMAP}\0`);
    const fd = native.memfdCreate("test-keymap", 0);
    try {
      native.pwrite(fd, text, 0, text.length, 0);
      c.requestUnlisted(kbd, 0, (w) => w.uint(1).uint(text.length), [fd]);
    } finally {
      native.close(fd);
    }
    await c.roundtrip();
    return { close: () => c.close() };
  } catch (err) {
    c.close();
    throw err;
  }
}
