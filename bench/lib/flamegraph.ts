// Renders a V8 .cpuprofile as a flame graph: an SVG (one box per call path, width = samples) and folded stacks.
import { readFileSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { hitsSince } from "./cpuprofile.ts";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

/** One call path of the graph: its frame name, samples in it and below, and its callees. */
interface Frame {
  readonly name: string;
  total: number;
  self: number;
  readonly children: Map<string, Frame>;
}

const WIDTH = 1200;
const ROW = 17;
const MIN_PX = 0.3;

function frameName(n: Node): string {
  const f = n.callFrame;
  const fn = f.functionName === "" ? "(anonymous)" : f.functionName;
  return f.url === "" ? fn : `${fn} ${basename(f.url)}:${f.lineNumber + 1}`;
}

/** Merges the profile's call tree by frame name per path; (idle) is left out (waiting in epoll is not work). */
function callTree(nodes: readonly Node[], hits: ReadonlyMap<number, number>): Frame {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const root: Frame = { name: "all", total: 0, self: 0, children: new Map() };
  const walk = (n: Node, into: Frame): number => {
    const name = frameName(n);
    if (name === "(idle)") return 0;
    let f = into.children.get(name);
    if (f === undefined) {
      f = { name, total: 0, self: 0, children: new Map() };
      into.children.set(name, f);
    }
    let sum = hits.get(n.id) ?? 0;
    f.self += sum;
    for (const c of n.children ?? []) {
      const child = byId.get(c);
      if (child !== undefined) sum += walk(child, f);
    }
    f.total += sum;
    return sum;
  };
  const first = nodes[0];
  if (first !== undefined)
    for (const c of first.children ?? []) root.total += walk(byId.get(c) as Node, root);
  return root;
}

function escapeXml(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");
}

/** A stable warm colour per name, so one function keeps its colour across graphs. */
function colour(name: string): string {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  return `rgb(${205 + (h % 50)},${80 + ((h >> 8) % 120)},${40 + ((h >> 16) % 50)})`;
}

/**
 * Writes `<out>.svg` (root at the top, callees below, width = share of busy samples; hover shows samples and
 * share) and `<out>.folded` (one "a;b;c count" line per path, the input format of flamegraph.pl and speedscope).
 */
export function writeFlameGraph(cpuprofilePath: string, out: string, title: string, sinceUs?: number): void {
  const p = JSON.parse(readFileSync(cpuprofilePath, "utf8")) as Parameters<typeof hitsSince>[0] & {
    nodes: Node[];
  };
  const root = callTree(p.nodes, hitsSince(p, sinceUs));
  const folded: string[] = [];
  const boxes: string[] = [];
  let depthMax = 0;
  const scale = root.total === 0 ? 0 : WIDTH / root.total;
  const draw = (f: Frame, x: number, depth: number, path: string): void => {
    const w = f.total * scale;
    if (f.self > 0) folded.push(`${path} ${f.self}`);
    if (w < MIN_PX) return;
    depthMax = Math.max(depthMax, depth);
    const share = ((100 * f.total) / Math.max(1, root.total)).toFixed(2);
    const label = w > 40 ? escapeXml(f.name.slice(0, Math.floor(w / 7))) : "";
    boxes.push(
      `<g><title>${escapeXml(f.name)}: ${f.total} samples, ${share}%</title>` +
        `<rect x="${x.toFixed(2)}" y="${20 + depth * ROW}" width="${w.toFixed(2)}" height="${ROW - 1}" fill="${colour(f.name)}"/>` +
        (label === "" ? "" : `<text x="${(x + 3).toFixed(2)}" y="${20 + depth * ROW + 12}">${label}</text>`) +
        "</g>",
    );
    let cx = x;
    for (const c of [...f.children.values()].sort((a, b) => b.total - a.total)) {
      draw(c, cx, depth + 1, `${path};${c.name}`);
      cx += c.total * scale;
    }
  };
  draw(root, 0, 0, "all");
  const height = 30 + (depthMax + 1) * ROW;
  writeFileSync(
    `${out}.svg`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" font-family="monospace" font-size="11">` +
      `<text x="0" y="13">${escapeXml(title)} (${root.total} busy samples; idle left out)</text>${boxes.join("")}</svg>\n`,
  );
  writeFileSync(`${out}.folded`, `${folded.join("\n")}\n`);
}
