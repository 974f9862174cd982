// Window tags: the string a host sees for a guest title or app_id, tagged and cut to fit one Wayland message.
import { utf8Length } from "../../wire/wayland/message-writer.ts";

/** How a tag applies: put in front of the client's string, or used instead of it. */
export type TagMode = "prefix" | "replace";

/**
 * The tagged string: `tag + value` (prefix) or `tag` alone (replace), cut to at most `limitBytes` UTF-8 bytes by
 * dropping whole code points from the end (never half a surrogate pair). The tag comes first, so cutting can only
 * shorten the client's part, never remove the tag (unless the tag itself is longer than the limit).
 */
export function tagString(value: string, tag: string, mode: TagMode, limitBytes: number): string {
  let s = mode === "replace" ? tag : tag + value;
  while (s.length > 0 && utf8Length(s) > limitBytes) {
    const last = s.charCodeAt(s.length - 1);
    s = s.slice(0, last >= 0xdc00 && last <= 0xdfff ? -2 : -1);
  }
  return s;
}
