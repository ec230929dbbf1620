// Small helpers the views share: building elements without innerHTML for data (so a
// symbol or a model's text is never markup), and the number formats of the dashboard.

/** `h("td", { className: "num" }, "12.50")`: an element with properties and children. */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (key === "dataset") Object.assign(element.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      element.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key in element && !key.startsWith("aria")) element[key] = value;
    else element.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** A table row of cells; numbers (class `num`) right-aligned. */
export function row(cells, props = {}) {
  return h(
    "tr",
    props,
    cells.map((cell) => (cell instanceof Node ? cell : h("td", {}, cell))),
  );
}

export function money(value, digits = 2) {
  if (value == null || value === "") return "";
  const number = Number(value);
  return number.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function signed(value, digits = 2) {
  if (value == null || value === "") return "";
  const number = Number(value);
  const text = money(number, digits);
  return number > 0 ? `+${text}` : text;
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}
