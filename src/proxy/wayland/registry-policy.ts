// Which host globals a guest client may see, and at which highest version: a declarative allowlist with caps.

/** One policy entry: the highest version crossway advertises for an interface (it translates up to that). */
export interface GlobalRule {
  readonly maxVersion: number;
  /** Why the global is allowed or capped; shown by `crossway guest --print-policy`. */
  readonly why: string;
  /** Only offered when the transport can carry this global's fds (e.g. dmabuf needs the kernel backend). */
  readonly requires?: "dmabuf";
}

/**
 * The default allowlist. A global not listed is hidden. Caps are the highest version whose every fd-carrying
 * message crossway maps across the boundary; the advertised version is min(cap, host's version, our XML's).
 * Privileged or snooping interfaces (screencopy, data-control, virtual input, layer-shell, export-dmabuf,
 * compositor-private ones) are deliberately absent: a sandboxed app must not capture, inject or overlay.
 */
export const DEFAULT_GLOBALS: Readonly<Record<string, GlobalRule>> = {
  wl_compositor: { maxVersion: 6, why: "core surfaces" },
  wl_subcompositor: { maxVersion: 1, why: "core subsurfaces" },
  wl_shm: { maxVersion: 2, why: "shared-memory buffers, copied into host blobs on commit" },
  wl_seat: { maxVersion: 9, why: "input; wl_keyboard.keymap's fd becomes a guest fd" },
  wl_output: { maxVersion: 4, why: "outputs" },
  wl_data_device_manager: { maxVersion: 3, why: "clipboard and drag-and-drop through cross-domain pipes" },
  xdg_wm_base: { maxVersion: 6, why: "xdg-shell windows" },
  zxdg_output_manager_v1: { maxVersion: 3, why: "logical output geometry" },
  zxdg_decoration_manager_v1: { maxVersion: 1, why: "server-side decorations" },
  wp_viewporter: { maxVersion: 1, why: "viewports (damage math is viewport aware)" },
  wp_fractional_scale_manager_v1: { maxVersion: 1, why: "fractional scale hints" },
  wp_presentation: { maxVersion: 1, why: "presentation feedback" },
  wp_cursor_shape_manager_v1: { maxVersion: 1, why: "cursor shapes without buffers" },
  zwp_relative_pointer_manager_v1: { maxVersion: 1, why: "relative pointer motion (games)" },
  zwp_pointer_constraints_v1: { maxVersion: 1, why: "pointer lock and confine" },
  zwp_pointer_gestures_v1: { maxVersion: 3, why: "touchpad gestures" },
  zwp_text_input_manager_v3: { maxVersion: 1, why: "input methods" },
  zwp_primary_selection_device_manager_v1: { maxVersion: 1, why: "primary selection through pipes" },
  // Capped at 3: v4's feedback (main_device, tranche_target_device) names the host's dev_t and a host format table,
  // which mean nothing to the guest's virtio_gpu; never passed through, and not rewritten yet (issue 11).
  zwp_linux_dmabuf_v1: {
    maxVersion: 3,
    why: "guest DMA-BUFs as virtgpu resources (v3: no feedback with host device numbers)",
    requires: "dmabuf",
  },
  xdg_activation_v1: { maxVersion: 1, why: "focus requests with activation tokens" },
  wp_single_pixel_buffer_manager_v1: { maxVersion: 1, why: "solid-colour buffers without memory" },
  zwp_idle_inhibit_manager_v1: { maxVersion: 1, why: "video players keep the screen on" },
  wp_content_type_manager_v1: { maxVersion: 1, why: "content type hints" },
  zwp_keyboard_shortcuts_inhibit_manager_v1: { maxVersion: 1, why: "remote desktop and VM viewers" },
  wp_tearing_control_manager_v1: { maxVersion: 1, why: "tearing hints for games" },
  zwp_tablet_manager_v2: { maxVersion: 1, why: "drawing tablets" },
  xdg_toplevel_icon_manager_v1: { maxVersion: 1, why: "window icons (shm buffers)" },
};

/** A policy: the allowlist plus whether the transport can carry dmabufs. */
export interface RegistryPolicy {
  readonly globals: Readonly<Record<string, GlobalRule>>;
  readonly dmabuf: boolean;
}

/** What to do with one global the host announced. */
export type GlobalDecision =
  | { readonly show: true; readonly version: number }
  | { readonly show: false; readonly reason: string };

/**
 * Decides whether `iface` at host `hostVersion` is shown to the client, and at which version: never above what
 * the host offers, what our protocol tables know (`knownVersion`, 0 when unknown) or the policy's cap.
 */
export function decideGlobal(
  policy: RegistryPolicy,
  iface: string,
  hostVersion: number,
  knownVersion: number,
): GlobalDecision {
  const rule = policy.globals[iface];
  if (rule === undefined) return { show: false, reason: "not in the allowlist" };
  if (rule.requires === "dmabuf" && !policy.dmabuf) {
    return { show: false, reason: "the transport cannot carry DMA-BUFs (emulated device)" };
  }
  if (knownVersion <= 0) return { show: false, reason: "no protocol XML describes this interface" };
  const version = Math.min(rule.maxVersion, hostVersion, knownVersion);
  if (version < 1) return { show: false, reason: `host version ${hostVersion} is invalid` };
  return { show: true, version };
}
