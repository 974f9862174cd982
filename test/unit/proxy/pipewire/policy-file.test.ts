// The pipewire-filter policy file: defaults, and a precise error for every kind of bad document.
import { describe, expect, it } from "vitest";
import { parsePipeWirePolicy } from "../../../../src/proxy/pipewire/policy-file.ts";
import { useFdLeakCheck } from "../../../helpers/fd-leak.ts";

useFdLeakCheck();

describe("parsePipeWirePolicy", () => {
  it("fills defaults", () => {
    expect(parsePipeWirePolicy('{"profile":"camera"}', "p.json")).toEqual({
      profile: "camera",
      targets: [],
      tag: "guest.",
      cameraControls: false,
    });
  });

  it.each([
    ["{", /^p\.json: not JSON \(/],
    ["[]", /^p\.json: must be a JSON object$/],
    [
      '{"profile":"camera","extra":1}',
      /^p\.json: unknown key 'extra' \(known: profile, targets, tag, cameraControls\)$/,
    ],
    [
      '{"profile":"webcam"}',
      /^p\.json: 'profile' must be one of camera\|screencast\|audio-playback\|audio-capture, not "webcam"$/,
    ],
    ['{"profile":"camera","targets":[""]}', /^p\.json: 'targets' must be an array of non-empty/],
    [
      '{"profile":"camera","cameraControls":"yes"}',
      /^p\.json: 'cameraControls' must be true or false, not "yes"$/,
    ],
  ])("refuses %s", (text, msg) => {
    expect(() => parsePipeWirePolicy(text, "p.json")).toThrow(msg);
  });
});
