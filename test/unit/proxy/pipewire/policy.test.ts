// Unit tests of the filter's property rules (pipewire.md §7.5) and parameter schemas (§7.6).
import { describe, expect, it } from "vitest";
import { checkCameraControl, checkParam } from "../../../../src/proxy/pipewire/param-schema.ts";
import {
  filterClientProps,
  filterNodeProps,
  filterPortProps,
  PROFILES,
} from "../../../../src/proxy/pipewire/policy.ts";
import { type Pod, pod } from "../../../../src/wire/pipewire/pod-types.ts";
import { useFdLeakCheck } from "../../../helpers/fd-leak.ts";

useFdLeakCheck();

const camera = { profile: PROFILES.camera, targets: new Set(["testcam", "42"]), tag: "vm." };
const playback = { profile: PROFILES["audio-playback"], targets: new Set(["testsink"]), tag: "vm." };

describe("client properties", () => {
  it("keeps a guest proxy's crossway.guest.* claims only under the filter's tag", () => {
    const r = filterClientProps(
      [
        ["crossway.guest.app", "pw-cat"],
        ["crossway.guest.client", "pw7"],
        [`crossway.guest.${"x".repeat(60)}`, "long key"],
      ],
      "vm1.",
    );
    expect(r.kept).toEqual([
      ["crossway.guest.app", "vm1.pw-cat"],
      ["crossway.guest.client", "vm1.pw7"],
    ]);
    expect(r.dropped.map((d) => d.reason)).toEqual(["not-allowlisted"]);
  });

  it("drops access-granting keys, forces mlock off, clamps log.level, keeps the allowlist", () => {
    const r = filterClientProps([
      ["application.name", "app"],
      ["pipewire.access", "unrestricted"],
      ["pipewire.access.portal.app_id", "x"],
      ["xdg-desktop-portal.app_id", "x"],
      ["media.category", "Manager"],
      ["mem.allow-mlock", "true"],
      ["log.level", "9"],
      ["default.clock.rate", "48000"],
      ["application.process.id", "1"],
    ]);
    expect(r.kept).toEqual([
      ["application.name", "app"],
      ["mem.allow-mlock", "false"],
      ["log.level", "3"],
      ["default.clock.rate", "48000"],
    ]);
    expect(r.dropped.filter((d) => d.reason === "grants-access").map((d) => d.key)).toEqual([
      "pipewire.access",
      "pipewire.access.portal.app_id",
      "xdg-desktop-portal.app_id",
      "media.category",
    ]);
  });
});

describe("node properties", () => {
  it("passes what pipewiresrc sends, tagging names and keeping allowed targets", () => {
    const r = filterNodeProps(
      [
        ["node.name", "viewer"],
        ["media.class", "Stream/Input/Video"],
        ["target.object", "testcam"],
        ["node.target", "othercam"],
        ["stream.is-live", "true"],
      ],
      camera,
    );
    expect(r.refusal).toBeNull();
    expect(r.kept).toEqual([
      ["node.name", "vm.viewer"],
      ["media.class", "Stream/Input/Video"],
      ["target.object", "testcam"],
      ["stream.is-live", "true"],
    ]);
    expect(r.dropped.map((d) => d.key)).toEqual(["node.target"]);
  });

  it("refuses device impersonation and lingering nodes", () => {
    expect(filterNodeProps([["media.class", "Video/Source"]], camera).refusal).toMatch(/Video\/Source/);
    expect(filterNodeProps([["media.class", "Audio/Sink"]], playback).refusal).toMatch(/Audio\/Sink/);
    expect(filterNodeProps([["object.linger", "true"]], playback).refusal).toMatch(/linger/);
  });

  it("strips scheduling and factory keys, bad latencies and rates", () => {
    const r = filterNodeProps(
      [
        ["node.driver", "true"],
        ["library.name", "audioconvert/libspa-audioconvert"],
        ["node.latency", "16/48000"],
        ["node.rate", "1/12345"],
        ["node.latency", "1024/48000"],
        ["stream.capture.sink", "true"],
      ],
      playback,
    );
    expect(r.refusal).toBeNull();
    expect(r.kept).toEqual([["node.latency", "1024/48000"]]);
  });

  it("keeps port names and monitor flags, drops the rest", () => {
    const r = filterPortProps(
      [
        ["port.name", "monitor_FL"],
        ["port.monitor", "true"],
        ["object.path", "x"],
        ["format.dsp", "8 bit raw midi"],
      ],
      playback,
    );
    expect(r.kept).toEqual([
      ["port.name", "monitor_FL"],
      ["port.monitor", "true"],
    ]);
  });
});

describe("param schemas", () => {
  const choice = (type: number, values: Pod[]): Pod =>
    ({ t: "choice", choiceType: 1, flags: 0, childType: 4, values, ...{ type } }) as Pod;
  const videoFormat = pod.object(0x40003, 3, [
    { key: 1, flags: 0, value: pod.id(2) },
    { key: 2, flags: 0, value: pod.id(1) },
    { key: 0x20003, flags: 0, value: pod.rect(320, 240) },
  ]);

  it("accepts a video EnumFormat for the camera profile and refuses it for audio", () => {
    expect(checkParam(videoFormat, 3, PROFILES.camera, "p")).toBeNull();
    expect(checkParam(videoFormat, 3, PROFILES["audio-playback"], "p")).toMatch(/mediaType/);
  });

  it("refuses wrong object types, unknown keys and oversized values", () => {
    expect(checkParam(videoFormat, 5, PROFILES.camera, "p")).toMatch(/object type/);
    const unknownKey = pod.object(0x40003, 3, [
      { key: 1, flags: 0, value: pod.id(2) },
      { key: 0x20016, flags: 0, value: pod.bytes(new Uint8Array(4)) },
    ]);
    expect(checkParam(unknownKey, 3, PROFILES.camera, "p")).toMatch(/0x20016/);
    const huge = pod.object(0x40003, 3, [
      { key: 1, flags: 0, value: pod.id(2) },
      { key: 0x20003, flags: 0, value: pod.rect(100000, 240) },
    ]);
    expect(checkParam(huge, 3, PROFILES.camera, "p")).toMatch(/range/);
    const buffers = pod.object(0x40004, 5, [
      { key: 1, flags: 0, value: choice(4, [pod.int(0), pod.int(1), pod.int(0x7fffffff)]) },
    ]);
    // pipewiresrc's real Buffers range: default 0 below min 1 (accepted).
    expect(checkParam(buffers, 5, PROFILES.camera, "p")).toBeNull();
  });

  it("refuses Props params with filter-graph keys or nesting, and non-camera controls", () => {
    const graph = pod.object(0x40002, 2, [
      {
        key: 0x80001,
        flags: 0,
        value: pod.struct(pod.string("audioconvert.filter-graph.0"), pod.string("{}")),
      },
    ]);
    expect(checkParam(graph, 2, PROFILES["audio-playback"], "p")).toMatch(/audioconvert/);
    const nested = pod.object(0x40002, 2, [
      { key: 0x80001, flags: 0, value: pod.struct(pod.string("a"), pod.struct()) },
    ]);
    expect(checkParam(nested, 2, PROFILES["audio-playback"], "p")).toMatch(/nested/);
    expect(
      checkCameraControl(pod.object(0x40002, 2, [{ key: 0x20001, flags: 0, value: pod.int(5) }]), "c"),
    ).toBeNull();
    expect(checkCameraControl(nested, "c")).toMatch(/0x80001/);
  });
});
