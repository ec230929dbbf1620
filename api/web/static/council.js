// Council: being built (issue 18). A placeholder so the shell's router has every view.
import { h } from "./dom.js";

export function councilView(root) {
  root.replaceChildren(h("section", {}, h("h2", {}, "Council"), h("p", { className: "muted" }, "Not built yet.")));
  return { stop() {} };
}
