// A small, strict XML reader for Wayland protocol files: elements, attributes and line numbers, no I/O.
import { WireXmlError } from "./errors.ts";

/** One XML element with its attributes, children and the line it starts on (1-based). */
export interface XmlElement {
  readonly name: string;
  readonly attrs: ReadonlyMap<string, string>;
  readonly children: XmlElement[];
  readonly line: number;
}

const ENTITIES: Readonly<Record<string, string>> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };

/**
 * Parses `text` into its root element. Text content is dropped: protocol tables need only elements and
 * attributes (descriptions are prose, which we never copy). Throws {@link WireXmlError} naming `source` and the
 * line of the first problem. Handles the subset protocol files use: prolog, comments, DOCTYPE, CDATA, entities.
 */
export function parseXml(text: string, source: string): XmlElement {
  let pos = 0;
  let line = 1;
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;

  const fail = (what: string, at = line): never => {
    throw new WireXmlError(`${source}:${at}: ${what}`, { source, line: at });
  };
  const advanceTo = (end: number): void => {
    for (let i = pos; i < end; i++) if (text.charCodeAt(i) === 10) line++;
    pos = end;
  };
  const decodeEntities = (raw: string, at: number): string =>
    raw.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);|&/g, (m, name: string | undefined) => {
      if (name === undefined) return fail("bare '&' in attribute value", at);
      if (name.startsWith("#x")) return String.fromCodePoint(Number.parseInt(name.slice(2), 16));
      if (name.startsWith("#")) return String.fromCodePoint(Number.parseInt(name.slice(1), 10));
      const v = ENTITIES[name];
      return v ?? fail(`unknown entity '${m}'`, at);
    });

  while (pos < text.length) {
    const lt = text.indexOf("<", pos);
    if (lt < 0) {
      if (text.slice(pos).trim() !== "" && stack.length === 0) fail("text outside the root element");
      advanceTo(text.length);
      break;
    }
    if (stack.length === 0 && text.slice(pos, lt).trim() !== "") fail("text outside the root element");
    advanceTo(lt);
    if (text.startsWith("<!--", pos)) {
      const end = text.indexOf("-->", pos + 4);
      if (end < 0) fail("unterminated comment");
      advanceTo(end + 3);
      continue;
    }
    if (text.startsWith("<![CDATA[", pos)) {
      const end = text.indexOf("]]>", pos);
      if (end < 0) fail("unterminated CDATA section");
      advanceTo(end + 3);
      continue;
    }
    if (text.startsWith("<?", pos)) {
      const end = text.indexOf("?>", pos);
      if (end < 0) fail("unterminated processing instruction");
      advanceTo(end + 2);
      continue;
    }
    if (text.startsWith("<!", pos)) {
      const end = text.indexOf(">", pos);
      if (end < 0) fail("unterminated declaration");
      advanceTo(end + 1);
      continue;
    }
    const startLine = line;
    const gt = findTagEnd(text, pos);
    if (gt < 0) fail("unterminated tag");
    const body = text.slice(pos + 1, gt);
    advanceTo(gt + 1);
    if (body.startsWith("/")) {
      const name = body.slice(1).trim();
      const open = stack.pop();
      if (open === undefined) fail(`closing tag </${name}> without an open element`, startLine);
      else if (open.name !== name)
        fail(`closing tag </${name}> does not match <${open.name}> opened on line ${open.line}`, startLine);
      continue;
    }
    const selfClosing = body.endsWith("/");
    const inner = selfClosing ? body.slice(0, -1) : body;
    const m = /^([A-Za-z_][\w.-]*)/.exec(inner);
    if (m === null) fail(`malformed tag '<${body.slice(0, 20)}'`, startLine);
    const name = (m as RegExpExecArray)[1] as string;
    const attrs = new Map<string, string>();
    const attrRe = /\s+([A-Za-z_][\w.-]*)\s*=\s*("([^"]*)"|'([^']*)')/y;
    let ai = name.length;
    for (;;) {
      attrRe.lastIndex = ai;
      const a = attrRe.exec(inner);
      if (a === null) break;
      const key = a[1] as string;
      if (attrs.has(key)) fail(`duplicate attribute '${key}' on <${name}>`, startLine);
      attrs.set(key, decodeEntities(a[3] ?? a[4] ?? "", startLine));
      ai = attrRe.lastIndex;
    }
    if (inner.slice(ai).trim() !== "") fail(`malformed attributes on <${name}>`, startLine);
    const el: XmlElement = { name, attrs, children: [], line: startLine };
    const parent = stack[stack.length - 1];
    if (parent !== undefined) parent.children.push(el);
    else if (root === undefined) root = el;
    else fail(`second root element <${name}>`, startLine);
    if (!selfClosing) stack.push(el);
  }
  const open = stack[stack.length - 1];
  if (open !== undefined) fail(`element <${open.name}> opened on line ${open.line} is never closed`);
  if (root === undefined) fail("no root element");
  return root as XmlElement;
}

/** Index of the '>' closing the tag at `start`, skipping quoted attribute values; -1 if none. */
function findTagEnd(text: string, start: number): number {
  let quote = 0;
  for (let i = start + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (quote !== 0) {
      if (c === quote) quote = 0;
    } else if (c === 34 || c === 39) quote = c;
    else if (c === 62) return i;
    else if (c === 60) return -1;
  }
  return -1;
}
