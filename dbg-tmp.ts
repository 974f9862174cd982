import { startSway } from "./src/harness/sway.ts";
import { rawToplevel, views } from "./test/helpers/raw-toplevel.ts";
import { addVirtualPointer } from "./test/helpers/virtual-pointer.ts";
import { addVirtualKeyboard } from "./test/helpers/virtual-keyboard.ts";
const sway = await startSway({ extraConfig: ['for_window [app_id="^host-drag$"] floating enable, move absolute position 500 200'] });
try {
  const kb = await addVirtualKeyboard(sway.socketPath);
  const p = await addVirtualPointer(sway.socketPath, { width: 800, height: 600 });
  let ptr = 0;
  const t = await rawToplevel(sway.socketPath, "x", "host-drag", (c, reg) => {
    const seat = c.bind(reg, "wl_seat", 5);
    ptr = c.newId();
    c.request(seat, "wl_seat", "get_pointer", (w) => w.uint(ptr));
  });
  await new Promise((r) => setTimeout(r, 500));
  console.log(JSON.stringify((await views(sway)).map((v) => [v.app_id, v.rect])));
  await p.moveTo(516, 216);
  await p.press();
  await t.c.roundtrip();
  console.log(t.c.events.filter((e) => e.iface !== "wl_registry").map((e) => `${e.iface}.${e.name}(${e.args.join(",")})`).join("\n"));
  t.c.close(); p.close(); kb.close();
} finally { await sway.stop(); }
