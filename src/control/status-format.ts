// Renders a StatusReport as the table `crossway status` prints (pure).
import type { StatusReport } from "./status-report.ts";

/** "1.5 KiB", "12 MiB": byte counts for people. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** "42s", "3m07s", "2h05m". */
export function formatAge(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** A header line, then one row per connection (or "no connections"). Control characters in names are escaped. */
export function formatStatus(r: StatusReport): string {
  const m = r.memory;
  const lines = [
    `crossway ${r.command} (pid ${r.pid}, up ${formatAge(r.uptimeSec * 1000)}), policy ${r.policyFile ?? "built-in"} generation ${r.policyGeneration}, ${r.connections.length} connection${r.connections.length === 1 ? "" : "s"}`,
    `memory: RSS ${formatBytes(m.rssBytes)}, JS heap ${formatBytes(m.heapUsedBytes)} of ${formatBytes(m.heapTotalBytes)}, buffers ${formatBytes(m.arrayBuffersBytes)}${m.gcForced ? " (after a full GC)" : ""}`,
  ];
  const sp = r.spareChannels;
  if (sp !== undefined) {
    lines.push(
      `spare channels: ${sp.ready} of ${sp.size} ready${sp.opening > 0 ? `, ${sp.opening} opening` : ""}; clients started on a spare ${sp.handedReady}, on a new channel ${sp.openedOnDemand}${sp.diedUnused > 0 ? `; ${sp.diedUnused} ended unused` : ""}${sp.failures > 0 ? `; ${sp.failures} failed in a row` : ""}${sp.requirementsAhead !== undefined && sp.requirementsAhead.asked > 0 ? `; image requirements asked ahead ${sp.requirementsAhead.asked}, used ${sp.requirementsAhead.used}` : ""}`,
    );
  }
  if (r.connections.length === 0) return lines.join("\n");
  const header = ["TAG", "APP_ID", "TITLE", "OBJECTS", "SHM", "QUEUED", "AGE", "REFUSED", "GEN"];
  const rows = r.connections.map((c) => [
    c.tag,
    clean(c.appId ?? "-"),
    clean(c.title ?? "-"),
    String(c.objects),
    formatBytes(c.shmBytes),
    formatBytes(c.queuedBytes),
    formatAge(c.ageMs),
    String(c.refusals),
    String(c.policyGeneration),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  for (const row of [header, ...rows]) {
    lines.push(
      row
        .map((cell, i) => cell.padEnd(widths[i] as number))
        .join("  ")
        .trimEnd(),
    );
  }
  return lines.join("\n");
}

/** A guest app chooses its title: keep it on one line and at most 40 code points in the table. */
function clean(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is replaced
  const one = s.replace(/[\u0000-\u001f\u007f]/g, "?");
  const cps = Array.from(one);
  return cps.length > 40 ? `${cps.slice(0, 39).join("")}…` : one;
}
