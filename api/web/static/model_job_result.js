// A model or sentiment job (GET /api/jobs/{id}): the summary its flow kept in the job's
// `result` (flows/training.py, pattern_scan.py, suggestion.py, sentiment.py), why it failed,
// or, while it runs, how far it is. Training: per model the version registered, its
// standing, the decision in words and the deciding figure beside its baselines, with the way
// to the Models view. A pattern scan: per pattern (and per classifier class) how often it
// fired and what followed. Suggestions: one line per symbol. Sentiment: mode, range, scorer
// (and why the configured model was not used, if it was not), the counts and each symbol's
// latest figure. Plain rendering of what the server stored; jobs.js draws it again as the
// job moves. Also the progress of any job that reports `done` of `total` (`jobProgress`).
import { h, row, when } from "./dom.js";

export const MODEL_JOBS = new Set(["training", "pattern_scan", "suggestion", "sentiment"]);
export const FINISHED = new Set(["completed", "failed", "canceled"]);
const TITLES = { training: "Training", pattern_scan: "Pattern scan", suggestion: "Suggestion", sentiment: "Sentiment" };
const TRAINED = ["forecaster", "pattern_classifier"];
const LOWER_IS_BETTER = new Set(["mase", "log_loss"]);

/** Whether a job's row opens this view: a model job running, done or failed (not canceled). */
export function opensModelJob(job) {
  return MODEL_JOBS.has(job.type) && job.status !== "canceled";
}

/**
 * How far a job is, from the facts its flow keeps in its result (any job type): while it
 * runs, a bar and "3 / 10 steps" once it reports numeric `done` and `total`, or "scored N
 * items" while it is at stage `scoring`; once ended, the steps it reached. Null if neither.
 */
export function jobProgress(job) {
  const result = job.result || {};
  const running = !FINISHED.has(job.status);
  if (running && result.stage === "scoring" && isNumber(result.scored)) {
    return h("span", { className: "job-progress", dataset: { scored: String(result.scored) } },
      `scored ${plural(result.scored, "item")}`);
  }
  const { done, total } = result;
  if (!isNumber(done) || !isNumber(total) || total <= 0) return null;
  const text = `${done} / ${total} steps`;
  return h("span", { className: "job-progress", dataset: { done: String(done), total: String(total) } },
    running ? h("progress", { max: total, value: done, "aria-label": `job ${job.id}: ${text}` }) : null,
    h("span", { className: "steps" }, text));
}

export function modelJobResult(root, job) {
  const title = `${TITLES[job.type] || job.type} job #${job.id}`;
  root.replaceChildren(h(
    "section",
    { className: "detail model-job", "aria-labelledby": "model-job-title", dataset: { type: job.type, status: job.status } },
    h("h2", { id: "model-job-title" }, title),
    h("p", { className: "muted" }, `${paramsText(job.params)}; ${FINISHED.has(job.status)
      ? `${job.status} ${when(job.finished_at)}` : `${job.status} since ${when(job.started_at || job.created_at)}`}.`),
    body(job),
  ));
  return { stop() {} };
}

function body(job) {
  if (!FINISHED.has(job.status)) {
    const stage = job.result?.stage;
    return h("div", { id: "model-job-progress", role: "status" },
      h("p", {}, stage ? `At stage ${stage}.` : `${job.status[0].toUpperCase()}${job.status.slice(1)}; no stage yet.`),
      jobProgress(job));
  }
  if (job.status !== "completed") {
    return h("p", { id: "model-job-error", className: "error", role: "alert" }, `Failed: ${job.error || "no reason was recorded"}`);
  }
  const result = job.result || {};
  if (job.type === "training" && result.stage === "trained") return trainingSummary(result);
  if (job.type === "pattern_scan" && result.stage === "scanned") return scanSummary(result);
  if (job.type === "suggestion" && result.stage === "suggested") return suggestionSummary(result);
  if (job.type === "sentiment" && result.mode) return sentimentSummary(result);
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

// --- sentiment ----------------------------------------------------------------------------

function sentimentSummary(result) {
  const live = result.mode === "live";
  const facts = [
    ["mode", "Mode", live ? "live: one run as of now" : "backfill"],
    ["range", live ? "As of" : "Range", live ? utc(result.to) : `${utc(result.from)} to ${utc(result.to)}`],
    ["scorer", "Scorer", result.scorer ?? "—"],
    ["runtime", "Runtime", result.runtime ?? "—"],
    ["scored", "Items scored", count(result.scored)],
    ["steps", "Steps", count(result.steps)],
    ["stored", "Rows stored", count(result.stored)],
    ["symbols", "Symbols with news", count(result.symbols)],
  ];
  const latest = result.latest || [];
  return h("div", {},
    result.scorer_note
      ? h("p", { id: "sentiment-scorer-note", className: "scorer-note", role: "note" },
        h("strong", {}, "The configured model was not used: "), result.scorer_note)
      : null,
    h("div", { className: "table-scroll" }, h(
      "table",
      { id: "sentiment-facts", className: "sentiment-facts" },
      h("tbody", {}, facts.map(([key, label, value]) => row([h("th", { scope: "row" }, label), value], { dataset: { fact: key } }))),
    )),
    h("h3", {}, live ? "Sentiment now" : "Sentiment at the last step"),
    latest.length === 0 ? h("p", { id: "sentiment-latest", className: "muted" }, "No symbol had news in the window.") : h("div", { className: "table-scroll" }, h(
      "table",
      { id: "sentiment-latest", className: "sentiment-latest" },
      h("thead", {}, h("tr", {}, ["Symbol", "Score", "Items", "Change"].map(
        (name, i) => h("th", { scope: "col", className: i ? "num" : "" }, name)))),
      h("tbody", {}, latest.map((s) => row([
        h("th", { scope: "row" }, s.symbol),
        h("td", { className: `num score ${sign(s.score)}` }, fixed(s.score)),
        h("td", { className: "num count" }, count(s.count)),
        h("td", { className: `num change ${sign(s.change)}` }, fixed(s.change)),
      ], { dataset: { symbol: s.symbol } }))),
    )),
    h("p", {}, h("a", { href: "#market" }, "Sentiment in Market")),
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

/** A signed figure to 3 places; "—" for none (a symbol without news then has no change). */
function fixed(value) {
  return isNumber(value) ? `${value > 0 ? "+" : ""}${value.toFixed(3)}` : "—";
}

function count(value) {
  return isNumber(value) ? value.toLocaleString("en-US") : "—";
}

function plural(n, noun) {
  return `${n.toLocaleString("en-US")} ${noun}${n === 1 ? "" : "s"}`;
}

/** An instant in UTC, to the minute: a backfill's steps are UTC midnights. */
function utc(iso) {
  const date = iso ? new Date(iso) : null;
  return date && !Number.isNaN(date.getTime()) ? `${date.toISOString().slice(0, 16).replace("T", " ")} UTC` : "—";
}

function day(iso) {
  return iso ? String(iso).slice(0, 10) : "—";
}
