// Portfolio: being built (issue 18). A placeholder so the shell's router has every view.
import { h } from "./dom.js";

export function portfolioView(root) {
  root.replaceChildren(h("section", {}, h("h2", {}, "Portfolio"), h("p", { className: "muted" }, "Not built yet.")));
  return { stop() {} };
}
