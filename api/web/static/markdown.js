// A small, safe subset of markdown as DOM nodes, for the model cards the server writes:
// headings, paragraphs, bullet and numbered lists, tables, fenced code, **bold** and
// `code`. Every piece of text goes in with textContent, never as markup, so a card can
// hold any string and still only be read. Anything else shows as the text it is.

import { h } from "./dom.js";

const HEADING = /^(#{1,6})\s+(.*)$/;
const BULLET = /^\s*[*-]\s+(.*)$/;
const NUMBERED = /^\s*\d+[.)]\s+(.*)$/;
const DIVIDER = /^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$/;

/**
 * `text` as block elements. `top` is the heading level a card's `#` becomes (the page's
 * own headings come first: a card shown under an h3 starts at h4).
 */
export function markdown(text, { top = 4 } = {}) {
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  const blocks = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i += 1;
    } else if (line.startsWith("```")) {
      const code = [];
      for (i += 1; i < lines.length && !lines[i].startsWith("```"); i += 1) code.push(lines[i]);
      i += 1; // the closing fence
      blocks.push(h("pre", {}, h("code", {}, code.join("\n"))));
    } else if (HEADING.test(line)) {
      const [, hashes, title] = line.match(HEADING);
      blocks.push(h(`h${Math.min(6, top + hashes.length - 1)}`, {}, ...inline(title)));
      i += 1;
    } else if (line.trimStart().startsWith("|")) {
      const rows = [];
      for (; i < lines.length && lines[i].trimStart().startsWith("|"); i += 1) rows.push(lines[i]);
      blocks.push(table(rows));
    } else if (BULLET.test(line) || NUMBERED.test(line)) {
      const pattern = BULLET.test(line) ? BULLET : NUMBERED;
      const items = [];
      for (; i < lines.length && pattern.test(lines[i]); i += 1) {
        items.push(h("li", {}, ...inline(lines[i].match(pattern)[1])));
      }
      blocks.push(h(pattern === BULLET ? "ul" : "ol", {}, ...items));
    } else {
      const words = [];
      for (; i < lines.length && isText(lines[i]); i += 1) words.push(lines[i].trim());
      blocks.push(h("p", {}, ...inline(words.join(" "))));
    }
  }
  return blocks;
}

function isText(line) {
  return Boolean(line.trim()) && !line.startsWith("```") && !HEADING.test(line) &&
    !line.trimStart().startsWith("|") && !BULLET.test(line) && !NUMBERED.test(line);
}

/** A pipe table: the first row is the header, a `|---|---:|` row sets each column's side. */
function table(rows) {
  let cells = rows.map(split);
  let header = null;
  let align = [];
  if (cells.length > 1 && DIVIDER.test(rows[1].trim())) {
    header = cells[0];
    align = cells[1].map((cell) => (cell.endsWith(":") ? "num" : ""));
    cells = cells.slice(2);
  }
  const body = cells.map((row) =>
    h("tr", {}, ...row.map((cell, c) => h("td", { className: align[c] || null }, ...inline(cell)))));
  const parts = [];
  if (header) {
    parts.push(h("thead", {}, h("tr", {},
      ...header.map((cell, c) => h("th", { scope: "col", className: align[c] || null }, ...inline(cell))))));
  }
  parts.push(h("tbody", {}, ...body));
  return h("div", { className: "table-scroll" }, h("table", {}, ...parts));
}

function split(line) {
  let text = line.trim();
  if (text.startsWith("|")) text = text.slice(1);
  if (text.endsWith("|")) text = text.slice(0, -1);
  return text.split("|").map((cell) => cell.trim());
}

/** `code` and **bold** within a line; the rest is text. */
function inline(text) {
  return String(text)
    .split(/(`[^`]+`|\*\*[^*]+\*\*)/)
    .filter(Boolean)
    .map((part) => {
      if (part.length > 2 && part.startsWith("`") && part.endsWith("`")) return h("code", {}, part.slice(1, -1));
      if (part.length > 4 && part.startsWith("**") && part.endsWith("**")) return h("strong", {}, part.slice(2, -2));
      return part;
    });
}

