// Models: the model registry (GET /api/models), read-only. Per model, the version that
// serves and its challengers, then every version with its standing, the bars it was
// trained on, its out-of-sample metrics beside the baselines it had to beat, and the
// decision on it in words. A version opens its model card (markdown, drawn by
// markdown.js as text only). Read when the view opens, and again when a `training` job
// ends (`job_updates`), since that is what registers and decides versions.
import { api, session } from "./app.js";
import { h } from "./dom.js";
import { topicFeed } from "./feeds.js";
import { markdown } from "./markdown.js";

/**
 * The figures that say whether a version is worth serving, by kind: each beside its
 * baselines (`lower`: a smaller figure is better). Another kind shows every figure it has.
 */
const KEY_METRICS = {
  forecaster: [
    { key: "mase", label: "MASE", lower: true, baselines: [["naive_mase", "naive"], ["seasonal_naive_mase", "seasonal naive"]] },
    { key: "directional_accuracy", label: "direction", percent: true, baselines: [] },
  ],
  pattern_classifier: [
    { key: "log_loss", label: "log loss", lower: true, baselines: [["prior_log_loss", "prior"]] },
    { key: "accuracy", label: "accuracy", lower: false, percent: true, baselines: [["prior_accuracy", "prior"]] },
    { key: "ece", label: "ECE", baselines: [] },
  ],
};

export function modelsView(root) {
  const note = h("p", { id: "models-note", className: "muted", role: "status" }, "Loading models…");
  const list = h("div", { id: "models", className: "models-list" });
  root.replaceChildren(
    h(
      "section",
      { className: "models", "aria-labelledby": "models-title" },
      h("div", { className: "section-head" }, h("h2", { id: "models-title" }, "Models")),
      note,
      list,
    ),
  );
  let stopped = false;
  let drawn = null; // the registry as last drawn (JSON): the same answer again redraws nothing
  const cards = new Map(); // holder element -> the version whose card it shows

  async function load() {
    try {
      const models = await api("/api/models");
      if (stopped) return;
      note.textContent = "";
      note.className = "muted";
      const text = JSON.stringify(models);
      if (text === drawn) return; // an open card stays open
      drawn = text;
      cards.clear();
      if (!models.length) {
        list.replaceChildren(h(
          "p",
          { id: "models-empty", className: "muted" },
          "No model yet: start a ", h("code", {}, "training"), " job from ",
          h("a", { href: "#jobs" }, "Jobs"),
          ". Until one is active, suggestions are made from pattern signals alone.",
        ));
        return;
      }
      list.replaceChildren(...models.map((model, i) => modelSection(model, i)));
    } catch (error) {
      if (stopped) return;
      note.textContent = `Models unavailable: ${error.message}`;
      note.className = "error";
    }
  }

  const feed = topicFeed({
    name: "jobs",
    topics: ["job_updates"],
    onMessage: (_, job) => {
      if (job.type === "training" && job.status === "completed") load();
    },
    onLive: () => load(), // a training that ended while the feed was cut
  });

  function modelSection(model, index) {
    const id = `model-${index}`;
    const holder = h("div", { id: `${id}-card`, className: "model-card-holder" });
    const active = model.active_version;
    const challengers = model.challenger_versions || [];
    const standing = h(
      "p",
      { className: "model-standing", dataset: { active: active == null ? "" : String(active) } },
      active == null
        ? h("span", { className: "no-active" }, "No active version: the strategy engine runs without this model.")
        : [h("span", {}, "Serving "), h("strong", { className: "active-version" }, `v${active}`)],
      challengers.length
        ? h("span", { className: "challengers" }, ` · challenger${challengers.length > 1 ? "s" : ""} (scored beside it, deciding nothing): `,
          challengers.map((v) => `v${v}`).join(", "))
        : null,
    );
    const rows = model.versions.map((version) => versionRow(model.name, version, holder));
    return h(
      "section",
      { className: "model", dataset: { model: model.name }, "aria-labelledby": `${id}-title` },
      h("h3", { id: `${id}-title` }, model.name),
      standing,
      h(
        "div",
        { className: "table-scroll" },
        h(
          "table",
          { className: "model-versions" },
          h("caption", { className: "visually-hidden" }, `Versions of ${model.name}, newest first`),
          h("thead", {}, h("tr", {}, ["Version", "Status", "Trained on", "Out of sample", "Decision", "Card"].map(
            (name) => h("th", { scope: "col" }, name),
          ))),
          h("tbody", {}, rows),
        ),
      ),
      holder,
    );
  }

  function versionRow(name, version, holder) {
    const label = `${name} v${version.version}`;
    const button = h("button", {
      type: "button", className: "card-button", "aria-label": `Show ${label}'s model card`,
      "aria-pressed": "false", "aria-controls": holder.id,
    }, "Card");
    button.addEventListener("click", () => toggleCard(name, version.version, holder, button));
    return h(
      "tr",
      { dataset: { version: String(version.version), status: version.status } },
      h("th", { scope: "row" }, `v${version.version}`),
      h("td", {}, h("span", { className: `model-status status-${version.status}` }, version.status)),
      h("td", { className: "data-range" }, `${day(version.data_from)} .. ${day(version.data_to)}`),
      h("td", { className: "metrics" }, metricList(name, version)),
      h(
        "td",
        { className: "decision" },
        version.decision || h("span", { className: "muted" }, "not decided yet"),
        version.decided_at ? h("span", { className: "decided muted" }, day(version.decided_at)) : null,
      ),
      // A version registered before cards were kept has none: say so, ask nothing.
      h("td", {}, version.has_card ? button : h("span", { className: "muted no-card" }, "no card")),
    );
  }

  async function toggleCard(name, version, holder, button) {
    const shown = cards.get(holder);
    for (const other of holder.closest(".model").querySelectorAll(".card-button")) other.setAttribute("aria-pressed", "false");
    if (shown && shown.name === name && shown.version === version) {
      cards.delete(holder);
      holder.replaceChildren();
      return;
    }
    const wanted = { name, version };
    cards.set(holder, wanted);
    button.setAttribute("aria-pressed", "true");
    holder.replaceChildren(h("p", { className: "muted" }, `Loading ${name} v${version}'s card…`));
    let parts;
    try {
      const text = await fetchCard(name, version);
      parts = markdown(text, { top: 4 });
    } catch (error) {
      parts = [h("p", { className: "error card-missing", role: "alert" }, `No card for ${name} v${version}: ${error.message}`)];
    }
    if (stopped || cards.get(holder) !== wanted) return; // another card was asked for meanwhile
    const close = h("button", { type: "button", className: "card-close", "aria-label": `Close ${name} v${version}'s model card` }, "Close");
    close.addEventListener("click", () => {
      cards.delete(holder);
      holder.replaceChildren();
      button.setAttribute("aria-pressed", "false");
      button.focus();
    });
    holder.replaceChildren(h(
      "article",
      { className: "model-card", "aria-label": `${name} v${version}'s model card`, dataset: { model: name, version: String(version) } },
      h("div", { className: "card-head" }, h("span", { className: "muted" }, `Model card: ${name} v${version}`), close),
      h("div", { className: "markdown" }, parts),
    ));
  }

  load();
  return {
    stop() {
      stopped = true;
      feed.stop();
    },
  };
}

/** A version's card as text; throws with the server's reason (a version without a card is a 404). */
async function fetchCard(name, version) {
  const headers = { Accept: "text/markdown, application/problem+json" };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  const response = await fetch(`/api/models/${encodeURIComponent(name)}/${encodeURIComponent(version)}/card`, { headers });
  if (response.ok) return response.text();
  const body = await response.json().catch(() => null);
  const detail = body && (body.detail || body.title);
  throw new Error(typeof detail === "string" ? detail : `${response.status} ${response.statusText}`);
}

/** The key figures of a version beside their baselines; a figure that beats every baseline
 * given is marked as such, in words for a screen reader. */
function metricList(name, version) {
  const metrics = version.metrics || {};
  const wanted = (KEY_METRICS[version.kind] || KEY_METRICS[name] || []).filter((m) => isNumber(metrics[m.key]));
  if (!wanted.length) {
    const all = Object.entries(metrics).filter(([, value]) => isNumber(value));
    if (!all.length) return h("span", { className: "muted" }, "none recorded");
    return h("ul", { className: "metric-list" }, all.map(([key, value]) => h("li", {}, h("span", { className: "metric-name" }, key), " ", format(value))));
  }
  return h(
    "ul",
    { className: "metric-list" },
    wanted.map((m) => {
      const value = metrics[m.key];
      const baselines = m.baselines.filter(([key]) => isNumber(metrics[key]));
      const beats = baselines.length > 0 && m.lower !== undefined
        ? baselines.every(([key]) => (m.lower ? value < metrics[key] : value > metrics[key]))
        : null;
      return h(
        "li",
        { dataset: { metric: m.key, beats: beats === null ? "" : String(beats) } },
        h("span", { className: "metric-name" }, m.label), " ",
        h("strong", { className: "metric-value" }, format(value, m.percent)),
        baselines.length
          ? h("span", { className: "baselines muted" }, ` vs ${baselines.map(([key, name]) => `${name} ${format(metrics[key], m.percent)}`).join(", ")}`)
          : null,
        beats === null ? null : h("span", { className: "visually-hidden" }, beats ? " (better than its baselines)" : " (not better than every baseline)"),
      );
    }),
  );
}

function isNumber(value) {
  return typeof value === "number" && Number.isFinite(value);
}

function format(value, percent = false) {
  if (percent) return `${(value * 100).toFixed(1)} %`;
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3);
}

function day(iso) {
  return iso ? iso.slice(0, 10) : "";
}
