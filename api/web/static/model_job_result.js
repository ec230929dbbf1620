// A finished model job (GET /api/jobs/{id}): the summary its flow kept in the job's
// `result` (flows/training.py, pattern_scan.py, suggestion.py), or why it failed.
// Training: per model the version registered, its standing, the decision in words and the
// deciding figure beside its baselines, with the way to the Models view. A pattern scan:
// per pattern (and per classifier class) how often it fired and what followed. Suggestions:
// one line per symbol. Plain rendering of what the server stored; nothing is live.
import { h, row, when } from "./dom.js";

export const MODEL_JOBS = new Set(["training", "pattern_scan", "suggestion"]);
const TITLES = { training: "Training", pattern_scan: "Pattern scan", suggestion: "Suggestion" };
const TRAINED = ["forecaster", "pattern_classifier"];
const LOWER_IS_BETTER = new Set(["mase", "log_loss"]);

/** Whether a job's row opens this view: a model job that ended done or failed. */
export function opensModelJob(job) {
  return MODEL_JOBS.has(job.type) && (job.status === "completed" || job.status === "failed");
}

export function modelJobResult(root, job) {
  const title = `${TITLES[job.type] || job.type} job #${job.id}`;
  root.replaceChildren(h(
    "section",
    { className: "detail model-job", "aria-labelledby": "model-job-title", dataset: { type: job.type, status: job.status } },
    h("h2", { id: "model-job-title" }, title),
    h("p", { className: "muted" }, `${paramsText(job.params)}; ${job.status} ${when(job.finished_at)}.`),
    body(job),
  ));
  return { stop() {} };
}

function body(job) {
  if (job.status !== "completed") {
    return h("p", { id: "model-job-error", className: "error", role: "alert" }, `Failed: ${job.error || "no reason was recorded"}`);
  }
  const result = job.result || {};
  if (job.type === "training" && result.stage === "trained") return trainingSummary(result);
  if (job.type === "pattern_scan" && result.stage === "scanned") return scanSummary(result);
  if (job.type === "suggestion" && result.stage === "suggested") return suggestionSummary(result);
  return h("p", { className: "muted" }, "This job kept no summary.");
}

// --- training -----------------------------------------------------------------------------

function trainingSummary(result) {
  const trained = TRAINED.filter((name) => result[name]);
  return h("div", { className: "trained-list" }, trained.map((name) => {
    const model = result[name];
    const id = `trained-${name}`;
    return h(
      "section",
      { className: "trained", id, dataset: { model: name, version: String(model.version), status: model.status }, "aria-labelledby": `${id}-title` },
      h("h3", { id: `${id}-title` }, `${name} v${model.version} `,
        h("span", { className: `model-status status-${model.status}` }, model.status)),
      h("p", { className: "decision" }, model.decision || h("span", { className: "muted" }, "not decided")),
      keyMetric(model),
      h("p", {}, h("a", { href: "#models" }, `${name} in Models`)),
    );
  }));
}

/** The figure that decided the version beside its baselines (`naive_mase`, `prior_log_loss`)
 * and, when both were measured on the same held-out bars, beside the active version's. */
function keyMetric(model) {
  const metrics = model.metrics || {};
  const name = model.metric;
  const value = metrics[name];
  if (!isNumber(value)) return h("p", { className: "muted" }, `No ${name || "metric"} recorded.`);
  const lower = LOWER_IS_BETTER.has(name);
  const baselines = Object.entries(metrics)
    .filter(([key, v]) => key !== name && key.endsWith(`_${name}`) && !key.startsWith("holdout_") && isNumber(v))
    .map(([key, v]) => [key.slice(0, -name.length - 1).replaceAll("_", " "), v]);
  const beats = baselines.length ? baselines.every(([, v]) => (lower ? value < v : value > v)) : null;
  const heldOut = Object.entries(metrics).find(([key]) => key.startsWith(`holdout_${name}_active_v`));
  return h(
    "p",
    { className: "key-metric", dataset: { metric: name, beats: beats === null ? "" : String(beats) } },
    h("span", { className: "metric-name muted" }, name.replaceAll("_", " ")), " ",
    h("strong", { className: "metric-value" }, figure(value)),
    baselines.length ? h("span", { className: "baselines muted" }, ` vs ${baselines.map(([n, v]) => `${n} ${figure(v)}`).join(", ")}`) : null,
    beats === null ? null : h("span", { className: "visually-hidden" }, beats ? " (better than its baselines)" : " (not better than every baseline)"),
    heldOut && isNumber(metrics[`holdout_${name}`])
      ? h("span", { className: "held-out muted" },
        `on the same held-out bars: ${figure(metrics[`holdout_${name}`])} vs active v${heldOut[0].split("_active_v")[1]} ${figure(heldOut[1])}`)
      : null,
  );
}

// --- pattern scan -------------------------------------------------------------------------

function scanSummary(result) {
  const classifier = result.classifier_version == null
    ? "not classified (no active pattern classifier, or not asked)"
    : `classes by pattern_classifier v${result.classifier_version}`;
  return h("div", {},
    h("p", { className: "scan-facts" },
      `${result.signals} signals on ${result.bars} bars of ${result.symbols} symbols, ${day(result.from)} to ${day(result.to)}; `
      + `returns over ${result.horizon} bars after each signal, signed by its side; ${classifier}.`),
    h("h3", {}, "By pattern"),
    tally("scan-by-kind", "kind", "Pattern", result.by_kind || []),
    (result.by_class || []).length
      ? [h("h3", {}, "By classifier class"), tally("scan-by-class", "class", "Class", result.by_class)]
      : null,
  );
}

function tally(id, key, label, rows) {
  if (!rows.length) return h("p", { id, className: "muted" }, "No pattern fired.");
  const head = [label, "Signals", "Buys", "With horizon", "Hit rate", "Mean signed return"];
  return h("div", { className: "table-scroll" }, h(
    "table",
    { id, className: "scan-tally" },
    h("thead", {}, h("tr", {}, head.map((name, i) => h("th", { scope: "col", className: i ? "num" : "" }, name)))),
    h("tbody", {}, rows.map((r) => row([
      h("th", { scope: "row" }, r[key]),
      h("td", { className: "num" }, String(r.signals)),
      h("td", { className: "num" }, String(r.buys)),
      h("td", { className: "num" }, String(r.with_horizon)),
      h("td", { className: "num hit-rate" }, percent(r.hit_rate, 1)),
      h("td", { className: `num mean-return ${sign(r.mean_signed_return)}` }, percent(r.mean_signed_return, 2)),
    ], { dataset: { [key]: r[key] } }))),
  ));
}

// --- suggestion ---------------------------------------------------------------------------

function suggestionSummary(result) {
  const made = result.suggestions || [];
  return h("div", {},
    h("p", { className: "suggestion-facts" },
      `As of ${day(result.as_of)}: ${made.length} suggestions, ${result.written} of them new `
      + "(one per symbol and day: a rerun adds none). ",
      h("a", { href: "#suggestions" }, "All suggestions")),
    made.length === 0 ? h("p", { className: "muted" }, "No symbol had bars to score.") : h("div", { className: "table-scroll" }, h(
      "table",
      { id: "suggestion-list" },
      h("thead", {}, h("tr", {}, ["Symbol", "Direction", "Score", "Signal", "Partial because"].map(
        (name, i) => h("th", { scope: "col", className: i === 2 ? "num" : "" }, name)))),
      h("tbody", {}, made.map((s) => row([
        h("th", { scope: "row" }, s.symbol),
        h("td", { className: `direction-${s.direction}` }, s.direction),
        h("td", { className: "num" }, s.score == null ? "—" : s.score.toFixed(3)),
        s.signal_kind === "none" ? h("td", { className: "muted" }, "no signal") : s.signal_kind,
        h("td", { className: "degraded" }, s.degraded || "—"),
      ], { dataset: { symbol: s.symbol, direction: s.direction } }))),
    )),
  );
}

// --- formats --------------------------------------------------------------------------------

function paramsText(params) {
  const text = Object.entries(params || {})
    .filter(([key]) => key !== "job_id")
    .map(([key, value]) => `${key}=${Array.isArray(value) ? value.join(",") : value}`)
    .join(", ");
  return text || "default parameters";
}

function isNumber(value) {
  return typeof value === "number" && Number.isFinite(value);
}

function figure(value) {
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3);
}

function percent(value, digits) {
  return isNumber(value) ? `${(value * 100).toFixed(digits)}%` : "—";
}

function sign(value) {
  return !isNumber(value) || value === 0 ? "" : value < 0 ? "loss" : "gain";
}

function day(iso) {
  return iso ? String(iso).slice(0, 10) : "—";
}
