// SPA POD type ids, fixed body sizes and the decoded value model shared by the POD reader, writer and validator.

/**
 * SPA_TYPE_* ids (spa/include/spa/utils/type.h). `Pod` (20) is an API tag with no wire form; see pipewire.md §2.2.
 */
export const PodType = {
  None: 1,
  Bool: 2,
  Id: 3,
  Int: 4,
  Long: 5,
  Float: 6,
  Double: 7,
  String: 8,
  Bytes: 9,
  Rectangle: 10,
  Fraction: 11,
  Bitmap: 12,
  Array: 13,
  Struct: 14,
  Object: 15,
  Sequence: 16,
  Pointer: 17,
  Fd: 18,
  Choice: 19,
  Pod: 20,
} as const;

/** One of the {@link PodType} values. */
export type PodTypeId = (typeof PodType)[keyof typeof PodType];

/** Human-readable type names, indexed by type id (for error messages and audit logs). */
export const POD_TYPE_NAMES: readonly string[] = [
  "?",
  "None",
  "Bool",
  "Id",
  "Int",
  "Long",
  "Float",
  "Double",
  "String",
  "Bytes",
  "Rectangle",
  "Fraction",
  "Bitmap",
  "Array",
  "Struct",
  "Object",
  "Sequence",
  "Pointer",
  "Fd",
  "Choice",
  "Pod",
];

/** The name of a type id, or `type#N` for unknown ids. */
export function podTypeName(type: number): string {
  return POD_TYPE_NAMES[type] ?? `type#${type}`;
}

/**
 * Exact body sizes of the fixed-size types (pipewire.md §2.4 item 3; the real parser only checks a minimum,
 * `body.h` SPA_POD_CHECK, so an 8-byte Int passes PipeWire but not us).
 */
export const FIXED_BODY_SIZE: ReadonlyMap<number, number> = new Map([
  [PodType.None, 0],
  [PodType.Bool, 4],
  [PodType.Id, 4],
  [PodType.Int, 4],
  [PodType.Long, 8],
  [PodType.Float, 4],
  [PodType.Double, 8],
  [PodType.Rectangle, 8],
  [PodType.Fraction, 8],
  [PodType.Fd, 8],
]);

/** Element types allowed in Array and Choice children (fixed scalars, no None/Fd), with their sizes. */
export const SCALAR_CHILD_SIZE: ReadonlyMap<number, number> = new Map([
  [PodType.Bool, 4],
  [PodType.Id, 4],
  [PodType.Int, 4],
  [PodType.Long, 8],
  [PodType.Float, 4],
  [PodType.Double, 8],
  [PodType.Rectangle, 8],
  [PodType.Fraction, 8],
]);

/** SPA_CHOICE_* (spa/include/spa/pod/pod.h). */
export const ChoiceType = { None: 0, Range: 1, Step: 2, Enum: 3, Flags: 4 } as const;

/**
 * Minimum value counts per choice type (body.h spa_pod_choice_n_values). Enum needs only the default: the
 * research validator (pwtrace.py) accepted 1 and real traffic never sent fewer than 2, so 1 is the safe floor.
 */
export const CHOICE_MIN_VALUES: readonly number[] = [1, 3, 4, 1, 1];

/** SPA_POD_PROP_FLAG_* (pod.h): READONLY, HARDWARE, HINT_DICT, MANDATORY, DONT_FIXATE, DROP. */
export const KNOWN_PROP_FLAGS = 0x3f;

/** SPA_POD_MAX_SIZE (pod.h, since 1.5.81): a POD body must be smaller than 1 MiB. */
export const POD_MAX_BODY = 1 << 20;

/** A scalar element of an Array or Choice, or a fixed value. */
export type PodScalar =
  | { readonly t: "bool"; readonly v: boolean }
  | { readonly t: "id"; readonly v: number }
  | { readonly t: "int"; readonly v: number }
  | { readonly t: "long"; readonly v: bigint }
  | { readonly t: "float"; readonly v: number }
  | { readonly t: "double"; readonly v: number }
  | { readonly t: "rect"; readonly w: number; readonly h: number }
  | { readonly t: "frac"; readonly num: number; readonly denom: number };

/** One Object property: `{u32 key; u32 flags; POD value}`. */
export interface PodProp {
  readonly key: number;
  readonly flags: number;
  readonly value: Pod;
}

/** One Sequence control: `{u32 offset; u32 type; POD value}`. */
export interface PodControl {
  readonly offset: number;
  readonly type: number;
  readonly value: Pod;
}

/** A decoded POD. Numbers are u32 for ids/keys and i32 for Int, bigint for 64-bit values. */
export type Pod =
  | { readonly t: "none" }
  | PodScalar
  | { readonly t: "string"; readonly v: string }
  | { readonly t: "bytes"; readonly v: Uint8Array }
  | { readonly t: "bitmap"; readonly v: Uint8Array }
  | { readonly t: "array"; readonly childType: number; readonly values: readonly PodScalar[] }
  | { readonly t: "struct"; readonly fields: readonly Pod[] }
  | {
      readonly t: "object";
      readonly objectType: number;
      readonly objectId: number;
      readonly props: readonly PodProp[];
    }
  | { readonly t: "sequence"; readonly unit: number; readonly controls: readonly PodControl[] }
  | { readonly t: "pointer"; readonly pointerType: number; readonly value: bigint }
  | { readonly t: "fd"; readonly v: bigint }
  | {
      readonly t: "choice";
      readonly choiceType: number;
      readonly flags: number;
      readonly childType: number;
      /** Scalars, or (childType Array) one array per value. */
      readonly values: readonly (PodScalar | PodArrayValue)[];
    };

/** An Array value inside a Choice<Array> (seen for SPA_FORMAT_AUDIO_position, pipewire.md §2.2). */
export interface PodArrayValue {
  readonly t: "array";
  readonly childType: number;
  readonly values: readonly PodScalar[];
}

/** Helper constructors, used by the proxy's own messages and by tests. */
export const pod = {
  none: (): Pod => ({ t: "none" }),
  bool: (v: boolean): Pod => ({ t: "bool", v }),
  id: (v: number): Pod => ({ t: "id", v: v >>> 0 }),
  int: (v: number): Pod => ({ t: "int", v: v | 0 }),
  long: (v: bigint | number): Pod => ({ t: "long", v: BigInt(v) }),
  float: (v: number): Pod => ({ t: "float", v }),
  double: (v: number): Pod => ({ t: "double", v }),
  string: (v: string): Pod => ({ t: "string", v }),
  bytes: (v: Uint8Array): Pod => ({ t: "bytes", v }),
  rect: (w: number, h: number): Pod => ({ t: "rect", w, h }),
  frac: (num: number, denom: number): Pod => ({ t: "frac", num, denom }),
  fd: (index: number): Pod => ({ t: "fd", v: BigInt(index) }),
  struct: (...fields: Pod[]): Pod => ({ t: "struct", fields }),
  object: (objectType: number, objectId: number, props: PodProp[]): Pod => ({
    t: "object",
    objectType,
    objectId,
    props,
  }),
  /** A PipeWire Dict: `Struct(Int n, (String key, String value)*)`. */
  dict: (entries: Iterable<readonly [string, string]>): Pod => {
    const fields: Pod[] = [];
    for (const [k, v] of entries) fields.push({ t: "string", v: k }, { t: "string", v: v });
    return { t: "struct", fields: [{ t: "int", v: fields.length / 2 }, ...fields] };
  },
};

/** True when `p` is a Struct POD (a type guard for the fields of a message body). */
export const isStruct = (p: Pod | undefined): p is Pod & { t: "struct" } => p?.t === "struct";
