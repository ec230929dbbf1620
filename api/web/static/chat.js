// Chat: being built (issue 18). A placeholder so the shell's router has every view.
import { h } from "./dom.js";

export function chatView(root) {
  root.replaceChildren(h("section", {}, h("h2", {}, "Chat"), h("p", { className: "muted" }, "Not built yet.")));
  return { stop() {} };
}
