// `crossway demo`: the main job end to end: headless sway, `crossway device`, `crossway guest`, foot through it, a screenshot.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { CommandSpec, ParsedArgs } from "../cli-options.ts";
import { CrosswayError } from "../errors.ts";
import { makePeerDirs } from "../harness/compositor.ts";
import { startCrosswayStack } from "../harness/crossway-stack.ts";
import { countColor, readPng } from "../harness/png.ts";
import { killTrackedOnSignals, requireCommand, spawnTracked, waitFor } from "../harness/processes.ts";
import { startSway } from "../harness/sway.ts";
import { GUEST_SHARE } from "../harness/vm.ts";
import { GUEST_ENV, startVmStack } from "../harness/vm-stack.ts";

function parseColor(hex: string): [number, number, number] {
  if (!/^[0-9a-fA-F]{6}$/.test(hex)) {
    throw new CrosswayError("CW_USAGE", `crossway demo: --background must be RRGGBB hex, not '${hex}'`, {
      arg: "background",
      value: hex,
    });
  }
  const n = Number.parseInt(hex, 16);
  return [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
}

function parseSize(args: ParsedArgs, name: string, dflt: number): number {
  const v = args.str(name);
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v) || Number(v) < 64 || Number(v) > 4096) {
    throw new CrosswayError(
      "CW_USAGE",
      `crossway demo: --${name} must be an integer in 64..4096, not '${v}'`,
      {
        arg: name,
        value: v,
      },
    );
  }
  return Number(v);
}

async function runDemo(args: ParsedArgs): Promise<number> {
  const out = resolve(args.str("out") ?? "artifacts/demo.png");
  const hex = args.str("background") ?? "2050a0";
  const rgb = parseColor(hex);
  const width = parseSize(args, "width", 800);
  const height = parseSize(args, "height", 600);
  const text = args.str("text") ?? "hello from crossway";
  requireCommand("foot", "foot");
  requireCommand("grim", "grim");
  mkdirSync(dirname(out), { recursive: true });
  // Registered like a peer's directory, so an interrupted demo removes it too.
  const dirs = makePeerDirs("demo");
  const scratch = dirs.base;
  const removeSignalHandlers = killTrackedOnSignals();
  const sway = await startSway({ width, height });
  try {
    process.stdout.write(`sway is up: ${sway.socketPath}\n`);
    const iniText = `[colors]\nbackground=${hex}\nforeground=ffffff\n[main]\nfont=DejaVu Sans Mono:size=14\n`;
    const footArgs = (ini: string) => ["-c", ini, "sh", "-c", 'printf "%s\\n" "$0"; sleep 600', text];
    let foot: { running: boolean; stop(): Promise<void> };
    let stack: { stop(): Promise<void> };
    if (args.flag("vm")) {
      // foot runs inside a QEMU + rutabaga VM: its messages reach sway through the guest kernel's virtio_gpu and
      // QEMU's cross-domain, with crossway guest --device virtgpu in front of it in the guest.
      const vmStack = await startVmStack(sway, (l) => process.stdout.write(`${l}\n`));
      stack = vmStack;
      writeFileSync(join(vmStack.vm.shareDir, "foot.ini"), iniText);
      const inVm = await vmStack.vm.spawn(["foot", ...footArgs(`${GUEST_SHARE}/foot.ini`)], {
        env: GUEST_ENV,
      });
      let exited = false;
      void inVm.exited.then(() => {
        exited = true;
      });
      foot = {
        get running() {
          return !exited;
        },
        stop: async () => {
          if (!exited) await inVm.kill("SIGKILL");
        },
      };
      process.stdout.write(`foot started in the VM (guest pid ${inVm.pid})\n`);
    } else {
      // The client talks to crossway's guest socket; its messages reach sway only through the emulated
      // cross-domain device, exactly as they would through a VMM.
      const local = await startCrosswayStack(sway, { logLevel: process.env.CROSSWAY_LOG ?? "warn" });
      stack = local;
      process.stdout.write(
        `crossway device (pid ${local.devicePid}) and guest (pid ${local.guestPid}): ${local.socketPath}\n`,
      );
      const footIni = join(scratch, "foot.ini");
      writeFileSync(footIni, iniText);
      foot = spawnTracked("foot", "foot", footArgs(footIni), { env: local.env });
    }
    try {
      const total = width * height;
      // foot's tiled window fills the output; wait for its first frame to reach the screenshot.
      const seen = await waitFor(
        "foot's first frame in a grim screenshot",
        async () => {
          await sway.screenshot(out);
          const c = countColor(readPng(out), rgb);
          return c.count > total / 2 ? c : undefined;
        },
        {
          // Under TCG the guest's foot takes tens of seconds to start.
          timeoutMs: args.flag("vm") ? 300_000 : 20_000,
          intervalMs: 100,
          abort: () => (foot.running ? undefined : "foot exited"),
        },
      );
      process.stdout.write(
        `screenshot: ${out} (${width}x${height}; ${seen.count} of ${total} pixels are foot's background #${hex})\n`,
      );
    } finally {
      await foot.stop();
      await stack.stop();
    }
  } finally {
    await sway.stop();
    dirs.remove();
    removeSignalHandlers();
  }
  process.stdout.write(
    args.flag("vm")
      ? "foot, crossway guest, the VM and sway stopped\n"
      : "foot, crossway guest, crossway device and sway stopped\n",
  );
  return 0;
}

/** The `demo` subcommand. */
export const demoCommand: CommandSpec = {
  name: "demo",
  summary: "headless sway + crossway device + crossway guest, foot drawn through them, a grim screenshot",
  options: [
    { name: "out", value: "PNG", help: "where to write the screenshot (default artifacts/demo.png)" },
    { name: "background", value: "RRGGBB", help: "foot's background colour (default 2050a0)" },
    { name: "text", value: "TEXT", help: "what foot prints (default 'hello from crossway')" },
    { name: "width", value: "PX", help: "output width (default 800)" },
    { name: "height", value: "PX", help: "output height (default 600)" },
    {
      name: "vm",
      help: "run foot in a QEMU + rutabaga VM behind crossway guest --device virtgpu (scripts/setup-vm.sh builds it)",
    },
  ],
  run: runDemo,
};
