// systemd socket activation: LISTEN_FDS/LISTEN_PID fds from 3, made non-blocking and close-on-exec, env cleared.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { takeListenFds } from "../../../src/fd/listen-fds.ts";
import { native } from "../../../src/native.ts";
import { useFdLeakCheck } from "../../helpers/fd-leak.ts";

useFdLeakCheck();

const scratch = mkdtempSync(join(tmpdir(), "crossway-listenfds-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe("takeListenFds", () => {
  it("ignores variables meant for another pid, and clears them", () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: "1", LISTEN_FDS: "2" };
    expect(takeListenFds(env, 12345)).toEqual([]);
    expect(env).toEqual({});
    expect(takeListenFds({}, 12345)).toEqual([]);
  });

  it("rejects malformed values", () => {
    expect(() => takeListenFds({ LISTEN_PID: "x", LISTEN_FDS: "1" }, 1)).toThrow(
      expect.objectContaining({ code: "CW_LISTEN_FDS" }),
    );
    expect(() => takeListenFds({ LISTEN_PID: "7", LISTEN_FDS: "-1" }, 7)).toThrow(
      /LISTEN_FDS is not a count/,
    );
  });

  it("takes inherited sockets in a real child process started the way systemd does it", async () => {
    const path = join(scratch, "activated");
    const listenFd = native.unixListen(path, 4);
    const [a, b] = native.socketpair();
    const script = join(scratch, "child.ts");
    const mod = fileURLToPath(new URL("../../../src/fd/listen-fds.ts", import.meta.url));
    const nat = fileURLToPath(new URL("../../../src/native.ts", import.meta.url));
    writeFileSync(
      script,
      [
        `import { takeListenFds } from ${JSON.stringify(mod)};`,
        `import { native } from ${JSON.stringify(nat)};`,
        "const fds = takeListenFds();",
        "const out = fds.map((f) => ({ ...f, nonblock: (native.getFl(f.fd) & 0o4000) !== 0, path: native.fdPath(f.fd) }));",
        "console.log(JSON.stringify({ out, left: process.env.LISTEN_FDS ?? null }));",
      ].join("\n"),
    );
    // `exec` keeps the shell's pid, so LISTEN_PID=$$ names the node process, as systemd sets it after fork.
    const child = spawn(
      "sh",
      [
        "-c",
        `LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=wayland:ctl exec "${process.execPath}" --import tsx "${script}"`,
      ],
      { stdio: ["ignore", "pipe", "inherit", listenFd, a] },
    );
    native.close(listenFd);
    native.close(a);
    const chunks: Buffer[] = [];
    child.stdout?.on("data", (d: Buffer) => chunks.push(d));
    const code = await new Promise<number | null>((r) => child.on("close", (c) => r(c)));
    native.close(b);
    expect(code).toBe(0);
    const res = JSON.parse(Buffer.concat(chunks).toString()) as {
      out: { fd: number; name: string; nonblock: boolean; path: string }[];
      left: string | null;
    };
    expect(res.left).toBeNull();
    expect(res.out.map((o) => [o.fd, o.name, o.nonblock])).toEqual([
      [3, "wayland", true],
      [4, "ctl", true],
    ]);
    for (const o of res.out) expect(o.path).toMatch(/^socket:/);
  });
});
