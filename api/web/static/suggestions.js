// Suggestions: the strategy engine's scored view on each pattern signal, newest first. The
// stored ones (GET /api/suggestions) first, then live over the WebSocket (`suggestions`);
// the list is read again on each (re)connect, so nothing made while the feed was cut is
// missed. One suggestion per signal (symbol, kind, signal time): the same one stored and
// live is drawn once. A suggestion made from fewer inputs than configured says why on its
// row, so a signals-only view is never taken for the whole one. A `suggestion` job writes
// its suggestions (a past close) without publishing them: its end, on `job_updates`, has
// the list read again.
import { api } from "./app.js";
import { h } from "./dom.js";
import { topicFeed } from "./feeds.js";

const KEEP = 500;
const INPUTS = [
  ["signal", "signal"],
  ["forecaster", "forecaster"],
  ["pattern_classifier", "classifier"],
  ["sentiment", "sentiment"],
];
const ARROWS = { buy: "▲", sell: "▼", hold: "■" };

export function suggestionsView(root) {
  const body = h("tbody");
  const empty = h("p", { id: "suggestions-empty", className: "muted" }, "Loading suggestions…");
  const note = h("p", { id: "suggestions-note", className: "muted", role: "status" });
  const symbolFilter = h("input", { id: "suggestion-symbol", type: "search", placeholder: "AAPL", autocomplete: "off" });
  const directionFilter = h(
    "select",
    { id: "suggestion-direction" },
    h("option", { value: "" }, "all"),
    ["buy", "sell", "hold"].map((d) => h("option", { value: d }, d)),
  );
  root.replaceChildren(
    h(
      "section",
      { className: "suggestions", "aria-labelledby": "suggestions-title" },
      h(
        "div",
        { className: "section-head" },
        h("h2", { id: "suggestions-title" }, "Suggestions"),
        h(
          "div",
          { className: "filters" },
          h("label", { htmlFor: "suggestion-symbol" }, "Symbol ", symbolFilter),
          h("label", { htmlFor: "suggestion-direction" }, "Direction ", directionFilter),
        ),
      ),
      note,
      h(
        "div",
        { className: "table-scroll" },
        h(
          "table",
          { id: "suggestions" },
          h("caption", { className: "visually-hidden" }, "Suggestions of the strategy engine, newest first"),
          h("thead", {}, h("tr", {}, [
            ["Time"], ["Symbol"], ["Direction"], ["Confidence", "num"], ["Signal"],
            ["Inputs (share of the score)"], ["Models"],
          ].map(([name, className]) => h("th", { scope: "col", className }, name)))),
          body,
        ),
      ),
      empty,
    ),
  );

  const seen = new Set(); // keys queued or shown
  let newestTs = null; // the newest `ts` kept (its text, as the API wrote it)
  let stopped = false;
  let loading = null;
  let again = null; // a read asked for while one ran: { since } (all, if any asked for all)
  let loadedOnce = false;

  for (const input of [symbolFilter, directionFilter]) input.addEventListener("input", applyFilters);

  // Suggestions are queued as they come and drawn once per animation frame, so a burst costs
  // one layout; a hidden tab keeps at most KEEP of them until it is shown again.
  let queued = [];
  let frame = 0;

  function add(suggestion) {
    const key = suggestionKey(suggestion);
    if (seen.has(key)) return; // stored and live, or read again on a reconnect
    seen.add(key);
    const at = Date.parse(suggestion.ts);
    if (newestTs === null || at > Date.parse(newestTs)) newestTs = suggestion.ts;
    queued.push({ key, at, suggestion });
    if (queued.length > 2 * KEEP) queued = newest(queued, seen);
    if (!frame) frame = requestAnimationFrame(draw);
  }

  function draw() {
    frame = 0;
    const batch = newest(queued, seen).reverse(); // oldest first: each goes on top
    queued = [];
    for (const { key, at, suggestion } of batch) {
      const tr = suggestionRow(suggestion, at);
      tr.suggestionKey = key;
      const top = body.firstElementChild;
      const after = !top || Number(top.dataset.at) <= at
        ? top // the usual case: newer than every row shown
        : [...body.children].find((other) => Number(other.dataset.at) < at);
      body.insertBefore(tr, after || null); // newest first
      filterRow(tr);
    }
    while (body.children.length > KEEP) {
      seen.delete(body.lastElementChild.suggestionKey); // what is dropped may be shown again
      body.lastElementChild.remove();
    }
    showEmpty();
  }

  function showEmpty() {
    empty.textContent = "No suggestion yet: the strategy engine makes one for each pattern signal.";
    empty.hidden = body.children.length > 0 || queued.length > 0 || !loadedOnce;
  }

  function filterRow(tr) {
    const symbols = symbolFilter.value.toUpperCase().split(/[\s,]+/).filter(Boolean);
    tr.hidden =
      (symbols.length > 0 && !symbols.some((s) => tr.dataset.symbol.startsWith(s))) ||
      (directionFilter.value && tr.dataset.direction !== directionFilter.value);
  }

  function applyFilters() {
    for (const tr of body.children) filterRow(tr);
  }

  /** The stored suggestions: the newest KEEP, or (`since`) those as of the newest kept on. */
  async function load({ since = true } = {}) {
    if (loading) {
      again = { since: (again ? again.since : true) && since }; // read once more after
      return loading;
    }
    loading = (async () => {
      try {
        const query = new URLSearchParams({ limit: String(KEEP) });
        if (since && newestTs) query.set("since", newestTs);
        const stored = await api(`/api/suggestions?${query}`);
        if (stopped) return;
        for (const suggestion of stored) add(suggestion);
        loadedOnce = true;
        note.textContent = "";
        note.className = "muted";
        if (!frame) showEmpty();
      } catch (error) {
        note.textContent = `Stored suggestions unavailable: ${error.message}`;
        note.className = "error";
        empty.hidden = true;
      } finally {
        loading = null;
        const next = again;
        again = null;
        if (next && !stopped) load(next);
      }
    })();
    return loading;
  }

  const feed = topicFeed({
    name: "suggestions",
    topics: ["suggestions", "job_updates"],
    onMessage: (topic, data) => {
      if (topic === "suggestions") add(data);
      // A job's suggestions are as of a past close: older than the newest kept, so all.
      else if (data.type === "suggestion" && data.status === "completed") load({ since: false });
    },
    onLive: () => load(), // what was made while the feed was cut (or before it was up)
  });
  load();

  return {
    stop() {
      stopped = true;
      feed.stop();
      cancelAnimationFrame(frame);
    },
  };
}

/** One suggestion per signal: the suggestions table's unique key. The time is compared as
 * an instant, not as text (the API and the feed may write it with different precision). */
function suggestionKey(suggestion) {
  return `${suggestion.symbol}|${suggestion.signal_kind}|${Date.parse(suggestion.signal_ts)}`;
}

/** The newest KEEP of `queued`, newest first; the keys of the others leave `seen`. */
function newest(queued, seen) {
  const sorted = queued.slice().sort((a, b) => b.at - a.at);
  for (const { key } of sorted.slice(KEEP)) seen.delete(key);
  return sorted.slice(0, KEEP);
}

function suggestionRow(s, at) {
  const direction = ARROWS[s.direction] ? s.direction : "hold";
  const degraded = Boolean(s.degraded);
  const time = new Date(at);
  return h(
    "tr",
    {
      dataset: { symbol: s.symbol, direction, at: String(at), degraded: String(degraded) },
      className: degraded ? "degraded" : "",
    },
    h("td", { className: "time" }, h("time", { dateTime: s.ts, title: time.toLocaleString() }, stamp(time))),
    h("th", { scope: "row" }, s.symbol),
    h(
      "td",
      { className: "direction" },
      h("span", { className: `direction-${direction}` }, h("span", { "aria-hidden": "true" }, ARROWS[direction]), ` ${direction}`),
      h("span", { className: "score muted" }, signedText(s.score)),
      degraded ? h("span", { className: "partial-tag" }, "partial") : null,
      degraded ? reason(s.degraded) : null, // beside the direction: in view on a phone too
    ),
    h("td", { className: "num confidence" }, fixed(s.confidence)),
    h("td", { className: "kind" }, signalText(s)),
    h("td", { className: "inputs" }, contributions(s.contributions || {})),
    h("td", { className: "models" }, versions(s.inputs || {})),
  );
}

/** Each input's signed part of the score, with a bar of its share of the whole; "—" for an
 * input that was not there. */
function contributions(parts) {
  const total = INPUTS.reduce((sum, [name]) => sum + Math.abs(Number(parts[name]) || 0), 0);
  return h(
    "ul",
    { className: "contribs" },
    INPUTS.map(([name, label]) => {
      const value = parts[name];
      const present = value != null && Number.isFinite(Number(value));
      const share = present && total > 0 ? Math.abs(Number(value)) / total : 0;
      const bar = h("span", { className: "contrib-fill" });
      bar.style.width = `${Math.round(share * 100)}%`;
      return h(
        "li",
        {
          dataset: { input: name, sign: !present ? "absent" : Number(value) >= 0 ? "up" : "down" },
          title: present ? `${label}: ${signedText(value)} of the score (${Math.round(share * 100)} % of it)` : `${label}: not present`,
        },
        h("span", { className: "contrib-name" }, label),
        h("span", { className: "contrib-bar", "aria-hidden": "true" }, bar),
        h("span", { className: "contrib-value" }, present ? signedText(value) : "—"),
      );
    }),
  );
}

/** The signal behind it; a job's suggestion says which job and which close. */
function signalText(s) {
  const source = s.inputs && s.inputs.source;
  return [
    s.signal_kind === "none" ? h("span", { className: "muted" }, "no signal") : s.signal_kind,
    source && source.job_id != null
      ? h("span", { className: "source muted" }, `job #${source.job_id}`)
      : null,
  ];
}

/** The time of day for today's suggestions, the date too for older ones (a job's past close). */
function stamp(time) {
  const today = new Date().toDateString() === time.toDateString();
  return today ? time.toLocaleTimeString() : time.toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

function reason(text) {
  return h("p", { className: "degraded-reason" }, h("span", { "aria-hidden": "true" }, "⚠ "), text);
}

/** The model versions behind the suggestion, challengers (scored beside, deciding nothing) after. */
function versions(inputs) {
  const lines = [];
  for (const [name, label] of INPUTS.slice(1, 3)) {
    const said = inputs[name];
    if (said && said.version != null) lines.push(`${label} v${said.version}`);
  }
  for (const [name, said] of Object.entries(inputs.challengers || {})) {
    const label = name === "pattern_classifier" ? "classifier" : name;
    if (said && said.version != null) lines.push(`${label} v${said.version} (challenger)`);
    else if (said && said.error) lines.push(`${label} challenger failed`);
  }
  if (!lines.length) return "—";
  return lines.map((line) => h("span", { className: "model-line" }, line));
}

function fixed(value) {
  return value == null ? "" : Number(value).toFixed(2);
}

function signedText(value) {
  if (value == null) return "";
  const number = Number(value);
  return `${number > 0 ? "+" : ""}${number.toFixed(2)}`;
}
