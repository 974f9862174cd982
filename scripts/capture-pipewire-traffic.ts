// Captures real PipeWire traffic through crossway pipewire-filter into test/fixtures/pipewire/*.bin (the fixtures
// of the wire tests and the fuzzer's seeds). Needs the PipeWire stack packages; run: npx tsx scripts/capture-pipewire-traffic.ts
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startPipeWire, TEST_SINK } from "../src/harness/pipewire.ts";
import { run, spawnTracked } from "../src/harness/processes.ts";
import { startPipeWireFilter } from "../src/proxy/pipewire/filter-server.ts";
import type { ProfileName } from "../src/proxy/pipewire/policy.ts";
import { type CapturedMessage, encodeCapture, FIXTURE_DIR } from "../test/helpers/pipewire-fixtures.ts";

const stack = await startPipeWire();
const tone = join(stack.runtimeDir, "tone.wav");
{
  const n = 4800;
  const data = Buffer.alloc(n * 4);
  for (let i = 0; i < n; i++) data.writeInt32LE(Math.round(8000 * Math.sin(i / 10)) & 0xffff, i * 4);
  const h = Buffer.from(
    "RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0\x02\0\x80\xbb\0\0\0\xee\x02\0\x04\0\x10\0data\0\0\0\0",
    "latin1",
  );
  h.writeUInt32LE(36 + data.length, 4);
  h.writeUInt32LE(data.length, 40);
  writeFileSync(tone, Buffer.concat([h, data]));
}
const camera = spawnTracked(
  "testcam",
  "gst-launch-1.0",
  [
    "-q",
    "videotestsrc",
    "is-live=true",
    "!",
    "video/x-raw,format=RGBx,width=160,height=120,framerate=30/1",
    "!",
    "pipewiresink",
    "mode=provide",
    "stream-properties=props,media.class=Video/Source,media.role=Camera,node.name=testcam",
  ],
  { env: stack.env },
);
await new Promise((r) => setTimeout(r, 1000));

async function capture(
  name: string,
  profile: ProfileName,
  targets: string[],
  cmd: string,
  args: string[],
): Promise<void> {
  const msgs: CapturedMessage[] = [];
  const listen = join(stack.runtimeDir, `cap-${name}`);
  const filter = startPipeWireFilter({
    listenPath: listen,
    upstreamPath: stack.socketPath,
    profile,
    targets,
    audit: () => {},
    tap: (dir, f) => {
      const bytes = new Uint8Array(16 + f.size);
      const v = new DataView(bytes.buffer);
      v.setUint32(0, f.id, true);
      v.setUint32(4, ((f.opcode << 24) | f.size) >>> 0, true);
      v.setUint32(8, f.seq, true);
      v.setUint32(12, f.nFds, true);
      bytes.set(f.payload, 16);
      msgs.push({ dir, nFds: f.nFds, bytes });
    },
  });
  // pw-cat --record never ends by itself: its timeout (SIGKILL) is the end of the capture.
  const r = await run(cmd, args, {
    env: { ...stack.env, PIPEWIRE_REMOTE: listen },
    timeoutMs: cmd === "pw-cat" && args[0] === "--record" ? 2000 : 20_000,
  });
  filter.close();
  writeFileSync(join(FIXTURE_DIR, `${name}.bin`), encodeCapture(msgs));
  console.log(`${name}: rc ${r.code}, ${msgs.length} messages`);
}

try {
  await capture("camera", "camera", ["testcam"], "gst-launch-1.0", [
    "-q",
    "pipewiresrc",
    "target-object=testcam",
    "num-buffers=10",
    "!",
    "video/x-raw,format=RGBx",
    "!",
    "fakesink",
  ]);
  await capture("playback", "audio-playback", [TEST_SINK], "pw-cat", [
    "--playback",
    "--target",
    TEST_SINK,
    tone,
  ]);
  await capture("record", "audio-capture", [TEST_SINK], "pw-cat", [
    "--record",
    "-P",
    "{ stream.capture.sink=true }",
    "--target",
    TEST_SINK,
    join(stack.runtimeDir, "rec.wav"),
  ]);
  await capture("pwdump", "camera", ["testcam"], "pw-dump", []);
} finally {
  await camera.stop();
  await stack.stop();
}
