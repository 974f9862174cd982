// Parameter schemas for params a client announces or sets (pipewire.md §7.6): object type, keys and value shapes.
import { type Pod, type PodScalar, PodType } from "../../wire/pipewire/pod-types.ts";
import type { Profile } from "./policy.ts";

/** SPA_PARAM_* ids (spa/param/param.h). */
export const ParamId = {
  PropInfo: 1,
  Props: 2,
  EnumFormat: 3,
  Format: 4,
  Buffers: 5,
  Meta: 6,
  IO: 7,
  EnumPortConfig: 10,
  PortConfig: 11,
  Latency: 15,
  ProcessLatency: 16,
  Tag: 17,
} as const;

/** SPA_TYPE_OBJECT_* (spa/utils/type.h). */
const Obj = {
  PropInfo: 0x40001,
  Props: 0x40002,
  Format: 0x40003,
  Buffers: 0x40004,
  Meta: 0x40005,
  IO: 0x40006,
  PortConfig: 0x40008,
  Latency: 0x4000b,
  ProcessLatency: 0x4000c,
  Tag: 0x4000d,
} as const;

/** Object type each param id must carry. */
const PARAM_OBJECT: ReadonlyMap<number, number> = new Map([
  [ParamId.PropInfo, Obj.PropInfo],
  [ParamId.Props, Obj.Props],
  [ParamId.EnumFormat, Obj.Format],
  [ParamId.Format, Obj.Format],
  [ParamId.Buffers, Obj.Buffers],
  [ParamId.Meta, Obj.Meta],
  [ParamId.IO, Obj.IO],
  [ParamId.EnumPortConfig, Obj.PortConfig],
  [ParamId.PortConfig, Obj.PortConfig],
  [ParamId.Latency, Obj.Latency],
  [ParamId.ProcessLatency, Obj.ProcessLatency],
  [ParamId.Tag, Obj.Tag],
]);

/** Param ids a client-node may announce, per media type (EnumPortConfig/PortConfig come from audio adapters). */
export function allowedParamIds(profile: Profile): ReadonlySet<number> {
  const common = [1, 2, 3, 4, 5, 6, 7, 15, 16, 17];
  return new Set(profile.mediaType === "Audio" ? [...common, 10, 11] : common);
}

/** Value shape: a scalar type id, optionally also as a Choice of it; "array" for Array<Id|Float|Int>. */
type Shape = {
  readonly type: number;
  readonly choice: boolean;
  readonly min?: number;
  readonly max?: number;
};

const s = (type: number, choice = true, min?: number, max?: number): Shape => {
  const out: { type: number; choice: boolean; min?: number; max?: number } = { type, choice };
  if (min !== undefined) out.min = min;
  if (max !== undefined) out.max = max;
  return out;
};

const FORMAT_COMMON: ReadonlyMap<number, Shape> = new Map([
  [1, s(PodType.Id)],
  [2, s(PodType.Id)],
]);

/** spa/param/video/format.h keys 0x20001..0x2000f. */
const VIDEO_FORMAT: ReadonlyMap<number, Shape> = new Map([
  [0x20001, s(PodType.Id)],
  [0x20002, s(PodType.Long)],
  [0x20003, s(PodType.Rectangle, true, 1, 16384)],
  [0x20004, s(PodType.Fraction)],
  [0x20005, s(PodType.Fraction)],
  [0x20006, s(PodType.Int)],
  [0x20007, s(PodType.Id)],
  [0x20008, s(PodType.Fraction)],
  [0x20009, s(PodType.Id)],
  [0x2000a, s(PodType.Id)],
  [0x2000b, s(PodType.Id)],
  [0x2000c, s(PodType.Id)],
  [0x2000d, s(PodType.Id)],
  [0x2000e, s(PodType.Id)],
  [0x2000f, s(PodType.Id)],
]);

/** spa/param/audio/format.h keys; position (0x10005) is an Array<Id>, possibly inside a Choice. */
const AUDIO_FORMAT: ReadonlyMap<number, Shape> = new Map([
  [0x10001, s(PodType.Id)],
  [0x10002, s(PodType.Id)],
  [0x10003, s(PodType.Int, true, 1, 384000)],
  [0x10004, s(PodType.Int, true, 1, 64)],
  [0x10005, s(PodType.Array)],
]);

const BUFFERS: ReadonlyMap<number, Shape> = new Map([
  [1, s(PodType.Int, true, 1, 0x7fffffff)],
  [2, s(PodType.Int, true, 1, 4)],
  [3, s(PodType.Int, true, 0, 0x7fffffff)],
  [4, s(PodType.Int, true, 0, 0x7fffffff)],
  [5, s(PodType.Int, true, 0, 4096)],
  [6, s(PodType.Int, true, 0, 14)],
  [7, s(PodType.Id)],
]);

const META: ReadonlyMap<number, Shape> = new Map([
  [1, s(PodType.Id, false, 1, 9)],
  [2, s(PodType.Int, true, 0, 65536)],
]);

const IO: ReadonlyMap<number, Shape> = new Map([
  [1, s(PodType.Id, false, 1, 10)],
  [2, s(PodType.Int, false, 0, 4096)],
]);

const LATENCY: ReadonlyMap<number, Shape> = new Map([
  [1, s(PodType.Id, false)],
  [2, s(PodType.Float, false)],
  [3, s(PodType.Float, false)],
  [4, s(PodType.Int, false)],
  [5, s(PodType.Int, false)],
  [6, s(PodType.Long, false)],
  [7, s(PodType.Long, false)],
]);

const PROCESS_LATENCY: ReadonlyMap<number, Shape> = new Map([
  [1, s(PodType.Float, false)],
  [2, s(PodType.Int, false)],
  [3, s(PodType.Long, false)],
]);

const SCALAR_TAG: Record<string, number> = {
  bool: PodType.Bool,
  id: PodType.Id,
  int: PodType.Int,
  long: PodType.Long,
  float: PodType.Float,
  double: PodType.Double,
  rect: PodType.Rectangle,
  frac: PodType.Fraction,
};

function inRange(v: PodScalar, shape: Shape): boolean {
  if (shape.min === undefined || shape.max === undefined) return true;
  if (v.t === "rect") return v.w >= shape.min && v.w <= shape.max && v.h >= shape.min && v.h <= shape.max;
  if (v.t === "int" || v.t === "id") return v.v >= shape.min && v.v <= shape.max;
  return true;
}

/** Checks one property value against a shape; returns an error string or null. */
function checkShape(value: Pod, shape: Shape, where: string): string | null {
  if (shape.type === PodType.Array) {
    if (value.t === "array")
      return value.childType === PodType.Id && value.values.length <= 64
        ? null
        : `${where}: bad position array`;
    if (value.t === "choice" && value.childType === PodType.Array)
      return value.values.length <= 64 ? null : `${where}: too many choices`;
    return `${where}: expected Array<Id>`;
  }
  if (value.t === "choice") {
    if (!shape.choice) return `${where}: Choice not allowed`;
    if (value.childType !== shape.type)
      return `${where}: Choice of type ${value.childType}, expected ${shape.type}`;
    if (value.values.length > 64) return `${where}: Choice with ${value.values.length} values`;
    if (value.choiceType === 1 || value.choiceType === 2) {
      // A range must intersect the allowed bounds; its default may lie outside (pipewiresrc sends default 0
      // with min 1, and real clients announce maxima up to INT_MAX, trace-video.log).
      const lo = value.values[1] as PodScalar;
      const hi = value.values[2] as PodScalar;
      if (shape.min === undefined || shape.max === undefined || lo.t !== "int" || hi.t !== "int") return null;
      return lo.v <= shape.max && hi.v >= shape.min
        ? null
        : `${where}: range outside [${shape.min}, ${shape.max}]`;
    }
    for (const v of value.values) {
      if (!inRange(v as PodScalar, shape)) return `${where}: choice value out of range`;
    }
    return null;
  }
  if (SCALAR_TAG[value.t] !== shape.type) return `${where}: ${value.t} where type ${shape.type} is expected`;
  return inRange(value as PodScalar, shape) ? null : `${where}: value out of range`;
}

function checkKeys(
  obj: Pod & { t: "object" },
  tables: readonly ReadonlyMap<number, Shape>[],
  where: string,
): string | null {
  for (const prop of obj.props) {
    let shape: Shape | undefined;
    for (const t of tables) {
      shape = t.get(prop.key);
      if (shape !== undefined) break;
    }
    if (shape === undefined) return `${where}: key 0x${prop.key.toString(16)} not allowed`;
    const err = checkShape(prop.value, shape, `${where} key 0x${prop.key.toString(16)}`);
    if (err !== null) return err;
  }
  return null;
}

/** Strings and scalars only: PropInfo labels and Props.params entries must not nest. */
function flatStruct(p: Pod, where: string): string | null {
  if (p.t !== "struct") return `${where}: expected Struct`;
  for (const f of p.fields) {
    if (f.t === "struct" || f.t === "object" || f.t === "choice" || f.t === "bytes" || f.t === "array") {
      return `${where}: nested ${f.t}`;
    }
  }
  return null;
}

function formatOf(obj: Pod & { t: "object" }, profile: Profile, where: string): string | null {
  const mt = obj.props.find((p) => p.key === 1)?.value;
  const want = profile.mediaType === "Video" ? 2 : 1;
  const mtv =
    mt?.t === "id" ? mt.v : mt?.t === "choice" ? (mt.values[0] as PodScalar & { v: number }).v : undefined;
  if (mtv !== want) return `${where}: mediaType ${mtv} is not ${profile.mediaType}`;
  return checkKeys(obj, [FORMAT_COMMON, profile.mediaType === "Video" ? VIDEO_FORMAT : AUDIO_FORMAT], where);
}

/**
 * Validates one param object against its schema. `paramId` is the id the message assigns to it (SetParam) or
 * the object's own id (Update/PortUpdate). Returns null when valid, else a reason for the audit log.
 */
export function checkParam(param: Pod, paramId: number, profile: Profile, where: string): string | null {
  if (param.t === "none") return null;
  if (param.t !== "object") return `${where}: param is a ${param.t}`;
  const want = PARAM_OBJECT.get(paramId);
  if (want === undefined || param.objectType !== want) {
    return `${where}: param id ${paramId} with object type 0x${param.objectType.toString(16)}`;
  }
  switch (param.objectType) {
    case Obj.Format:
      return formatOf(param, profile, where);
    case Obj.Buffers:
      return checkKeys(param, [BUFFERS], where);
    case Obj.Meta:
      return checkKeys(param, [META], where);
    case Obj.IO:
      return checkKeys(param, [IO], where);
    case Obj.Latency:
      return checkKeys(param, [LATENCY], where);
    case Obj.ProcessLatency:
      return checkKeys(param, [PROCESS_LATENCY], where);
    case Obj.PortConfig:
      for (const p of param.props) {
        if (p.key === 5) {
          if (p.value.t !== "object" || p.value.objectType !== Obj.Format)
            return `${where}: PortConfig format`;
          const e = formatOf(p.value, profile, `${where} format`);
          if (e !== null) return e;
        } else if (
          p.key < 1 ||
          p.key > 4 ||
          !(p.value.t === "id" || p.value.t === "bool" || p.value.t === "choice")
        ) {
          return `${where}: PortConfig key ${p.key}`;
        }
      }
      return null;
    case Obj.PropInfo:
      for (const p of param.props) {
        const v = p.value;
        if (p.key === 4) {
          const e = flatStruct(v, `${where} labels`);
          if (e !== null) return e;
        } else if (p.key < 1 || p.key > 7 || v.t === "struct" || v.t === "object" || v.t === "bytes") {
          return `${where}: PropInfo key ${p.key} (${v.t})`;
        }
      }
      return null;
    case Obj.Props:
      return checkProps(param, where);
    case Obj.Tag:
      for (const p of param.props) {
        if (p.value.t === "object" || p.value.t === "bytes") return `${where}: Tag value ${p.value.t}`;
      }
      return null;
    default:
      return `${where}: object type 0x${param.objectType.toString(16)}`;
  }
}

/** SPA_PROP_params (spa/param/props.h): a Struct of (String key, value) pairs. */
const PROP_PARAMS = 0x80001;

/**
 * Props of the client's own node (§7.6): scalar, array and string values; `params` only flat and without
 * filter-graph or audioconvert keys, which could make the daemon load plugins (a4e2856d, 98fdedf3).
 */
export function checkProps(obj: Pod & { t: "object" }, where: string): string | null {
  for (const p of obj.props) {
    const v = p.value;
    if (p.key === PROP_PARAMS) {
      const e = flatStruct(v, `${where} params`);
      if (e !== null) return e;
      const fields = (v as Pod & { t: "struct" }).fields;
      for (let i = 0; i < fields.length; i += 2) {
        const k = fields[i];
        if (k?.t !== "string") return `${where} params: key ${i} is not a String`;
        if (/^(audioconvert\.|filter\.graph|filter-graph|library\.|api\.)/.test(k.v))
          return `${where} params: key '${k.v}'`;
      }
    } else if (v.t === "struct" || v.t === "object" || v.t === "bytes" || v.t === "bitmap") {
      return `${where}: Props key 0x${p.key.toString(16)} carries a ${v.t}`;
    }
  }
  return null;
}

/**
 * Camera controls for Node.SetParam (§7.4): Props with keys brightness..sharpness (0x20001..0x20008) or
 * SPA_PROP_START_CUSTOM (0x1000000) + a V4L2 user CID, values Int/Bool/Float, never `params`.
 */
export function checkCameraControl(obj: Pod, where: string): string | null {
  if (obj.t !== "object" || obj.objectType !== Obj.Props) return `${where}: not a Props object`;
  for (const p of obj.props) {
    const custom = p.key >= 0x1000000 + 0x00980900 && p.key < 0x1000000 + 0x00980900 + 0x100;
    if (!((p.key >= 0x20001 && p.key <= 0x20008) || custom))
      return `${where}: control key 0x${p.key.toString(16)}`;
    if (!(p.value.t === "int" || p.value.t === "bool" || p.value.t === "float"))
      return `${where}: control value ${p.value.t}`;
  }
  return null;
}
