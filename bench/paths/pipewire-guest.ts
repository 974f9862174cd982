// The guest PipeWire chain (issue 13): clients → crossway guest → cross-domain (crossway device, libkrun) →
// crossway pipewire-filter → daemon; one chain per filter profile the benchmarks need.
import { type PipeWireGuestChain, startPipeWireGuestChain } from "../../src/harness/pipewire-guest-stack.ts";
import type { PwPath } from "./pipewire.ts";

/** Two chains: camera (camera stream, pw-cli, pw-dump) and audio-playback (the audio stream). */
export const pwGuestChainPath: PwPath = {
  id: "crossway-guest",
  label: "crossway guest → device → filter",
  available: async () => undefined,
  start: async (ctx) => {
    // Logs at warn: the chain's info lines would otherwise be part of what is measured.
    const camera = await startPipeWireGuestChain(
      { socketPath: ctx.upstream },
      { profile: "camera", targets: [ctx.cameraNode], logLevel: "warn" },
    );
    let audio: PipeWireGuestChain;
    try {
      audio = await startPipeWireGuestChain(
        { socketPath: ctx.upstream },
        { profile: "audio-playback", logLevel: "warn" },
      );
    } catch (err) {
      await camera.stop();
      throw err;
    }
    const chains = [camera, audio];
    const names = ["filter", "device", "guest"] as const;
    return {
      remote: camera.socketPath,
      remotes: { "audio-playback": audio.socketPath },
      proxyPids: chains.flatMap((c) => [c.pids.filter, c.pids.device, c.pids.guest]),
      health: () => {
        for (const c of chains) for (const n of names) if (!c.running(n)) return `crossway ${n} exited`;
        return undefined;
      },
      stop: async () => {
        await camera.stop();
        await audio.stop();
      },
    };
  },
};
