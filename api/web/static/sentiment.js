// Sentiment beside prices, and the news behind it.
//
// `sentimentColumn`: each listed symbol's sentiment as of now (GET /api/sentiment), then each
// figure the `sentiment_analysis` flow stores, live on the WebSocket topic `sentiment`. The
// list is asked for without `symbols`: the answer is every symbol with news in the window,
// and a streamed symbol that is not an instrument (the simulator streams any name) would make
// a list that names it a 422. A symbol missing from the answer had no news: "—". Of two
// figures for a symbol, the later `as_of` wins, so a stored row read late never undoes a newer
// one; the list is read again on each (re)connect, so nothing stored while the feed was cut is
// missed.
//
// `symbolNews`: one symbol's items, newest first, each with its label, score and scorer, and
// the sentiment stored for it over time as a small line. Headlines and URLs are untrusted
// input: text only (never markup), and a link only to http(s).
import { api } from "./app.js";
import { LineSeries, themedChart } from "./charts.js";
import { h, when } from "./dom.js";
import { topicFeed } from "./feeds.js";

const BAND = 0.05; // |score| within this is neutral, as the lexicon labels an item
const NEWS_LIMIT = 50;
const HISTORY_LIMIT = 500;
const LABELS = new Set(["positive", "negative", "neutral"]);

/**
 * The prices table's sentiment cells. `cell(symbol)` makes a row's cell (a button that calls
 * `onSelect(symbol)`); `onUpdate(symbol)` is told of each live figure.
 */
export function sentimentColumn({ onSelect, onUpdate }) {
  const figures = new Map(); // symbol -> its newest figure (from the list or the topic)
  const cells = new Map(); // symbol -> its button
  const report = { window_h: null, change_h: null };
  let loaded = false;
  let failure = null;
  let stopped = false;

  function keep(figure) {
    const known = figures.get(figure.symbol);
    if (known && Date.parse(known.as_of) > Date.parse(figure.as_of)) return false;
    figures.set(figure.symbol, figure);
    return true;
  }

  function draw(symbol) {
    const button = cells.get(symbol);
    if (button) drawCell(button, symbol, figures.get(symbol), { loaded, failure, report });
  }

  async function load() {
    try {
      const answer = await api("/api/sentiment");
      if (stopped) return;
      report.window_h = answer.window_h;
      report.change_h = answer.change_h;
      const listed = new Set(answer.symbols.map((figure) => figure.symbol));
      for (const [symbol, figure] of figures) {
        // No news in the window as of the list's instant: an older figure has aged out.
        if (!listed.has(symbol) && Date.parse(figure.as_of) <= Date.parse(answer.as_of)) figures.delete(symbol);
      }
      for (const figure of answer.symbols) keep(figure);
      loaded = true;
      failure = null;
    } catch (error) {
      if (stopped) return;
      failure = error.message;
    }
    for (const symbol of cells.keys()) draw(symbol);
  }

  const feed = topicFeed({
    name: "sentiment",
    topics: ["sentiment"],
    onMessage: (_topic, data) => {
      if (!keep(data)) return;
      draw(data.symbol);
      if (onUpdate) onUpdate(data.symbol);
    },
    onLive: () => load(), // what was stored while the feed was cut (or before it was up)
  });
  load();

  return {
    cell(symbol) {
      const button = h("button", { type: "button", className: "sent-pick" });
      button.addEventListener("click", () => onSelect(symbol));
      cells.set(symbol, button);
      draw(symbol);
      return h("td", { className: "sentiment num" }, button);
    },
    stop() {
      stopped = true;
      feed.stop();
    },
  };
}

function drawCell(button, symbol, figure, { loaded, failure, report }) {
  if (!figure || !figure.count || figure.score == null) {
    button.dataset.sign = "none";
    button.dataset.count = "0";
    button.replaceChildren(h("span", { className: "sent-none" }, loaded || failure ? "—" : "…"));
    const why = failure
      ? `Sentiment unavailable: ${failure}`
      : loaded
        ? `No news of ${symbol} in the last ${hours(report.window_h)}`
        : "Loading sentiment…";
    button.title = why;
    button.setAttribute("aria-label", `${why}. Show ${symbol}'s news`);
    return;
  }
  const score = Number(figure.score);
  const sign = score > BAND ? "up" : score < -BAND ? "down" : "flat";
  const arrow = changeArrow(figure.change);
  button.dataset.sign = sign;
  button.dataset.count = String(figure.count);
  button.replaceChildren(
    h("span", { className: `sent-score sent-${sign}` }, signed(score)),
    h("span", { className: "sent-count" }, String(figure.count)),
    h("span", { className: `sent-change sent-change-${arrow.direction}`, "aria-hidden": "true" }, arrow.text),
  );
  const span = `${plural(figure.count, "item")} from ${when(figure.first_known_at)} to ${when(figure.last_known_at)}`;
  const change = figure.change == null
    ? "no earlier figure to compare"
    : `change ${signed(Number(figure.change))} against ${hours(report.change_h)} before`;
  button.title = `${figure.scorer}: ${span}; ${change}`;
  button.setAttribute("aria-label", `${symbol} sentiment ${signed(score)}, ${button.title}. Show its news`);
}

/**
 * One symbol's news panel in `root`: its items and its stored sentiment over time.
 * `refresh()` reads both again (a new figure came); `focus()` moves to its heading.
 */
export function symbolNews(root, symbol) {
  const title = h("h2", { id: "news-title", tabIndex: -1 }, `${symbol}: news and sentiment`);
  const holder = h("div", {
    id: "sentiment-chart", className: "sentiment-chart", role: "img",
    "aria-label": `${symbol}'s stored sentiment over time`, hidden: true,
  });
  const historyNote = h("p", { id: "sentiment-history-note", className: "muted" }, "Loading stored sentiment…");
  const summary = h("p", { id: "news-summary", className: "muted", role: "status" }, "Loading news…");
  const list = h("ol", { id: "news-list", className: "news-list" });
  root.replaceChildren(
    h(
      "section",
      { className: "symbol-news", "aria-labelledby": "news-title" },
      title,
      h("h3", {}, "Sentiment over time"),
      holder,
      historyNote,
      h("h3", {}, "News, newest first"),
      summary,
      list,
    ),
  );
  let chart = null;
  let series = null;
  let turn = 0; // which read is the newest: an older one may answer later
  let stopped = false;

  async function loadNews(mine) {
    const query = new URLSearchParams({ symbols: symbol, limit: String(NEWS_LIMIT) });
    try {
      const items = await api(`/api/news?${query}`);
      if (stopped || mine !== turn) return;
      list.replaceChildren(...items.map(newsItem));
      summary.className = "muted";
      if (!items.length) summary.replaceChildren(`No news known for ${symbol}: `, ...howToGetNews());
      else summary.textContent = items.length < NEWS_LIMIT
        ? `${plural(items.length, "item")}.`
        : `The newest ${NEWS_LIMIT} items.`;
    } catch (error) {
      if (stopped || mine !== turn) return;
      summary.className = "error";
      summary.textContent = `News unavailable: ${error.message}`;
    }
  }

  async function loadHistory(mine) {
    const query = new URLSearchParams({ symbol, limit: String(HISTORY_LIMIT) });
    try {
      const { points } = await api(`/api/sentiment/history?${query}`);
      if (stopped || mine !== turn) return;
      drawHistory(points);
    } catch (error) {
      if (stopped || mine !== turn) return;
      historyNote.className = "error";
      historyNote.textContent = `Stored sentiment unavailable: ${error.message}`;
    }
  }

  function drawHistory(points) {
    holder.dataset.points = String(points.length);
    historyNote.className = "muted";
    if (!points.length) {
      holder.hidden = true;
      historyNote.textContent = "No stored sentiment yet: the sentiment job stores a figure each time it runs.";
      return;
    }
    holder.hidden = false;
    if (!chart) {
      chart = themedChart(holder, { timeVisible: true });
      series = chart.addSeries(LineSeries, {
        color: "#4aa3ff", lineWidth: 2, pointMarkersVisible: true,
        priceFormat: { type: "price", precision: 2, minMove: 0.01 },
      });
      series.createPriceLine({ price: 0, color: "#8a96a3", lineWidth: 1, lineStyle: 2, axisLabelVisible: false });
    }
    const byTime = new Map(); // the chart wants one value per second, in order
    for (const p of points) byTime.set(Math.floor(Date.parse(p.as_of) / 1000), Number(p.score));
    series.setData([...byTime].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time, value })));
    chart.timeScale().fitContent();
    const last = points[points.length - 1];
    historyNote.textContent = `${plural(points.length, "stored figure")} from ${when(points[0].as_of)} to ${when(last.as_of)}; the newest ${signed(Number(last.score))} (${last.scorer}, ${plural(last.count, "item")}).`;
  }

  function refresh() {
    const mine = ++turn;
    loadNews(mine);
    loadHistory(mine);
  }

  refresh();
  return {
    refresh,
    focus() {
      title.focus();
      title.scrollIntoView({ block: "nearest" });
    },
    stop() {
      stopped = true;
      if (chart) chart.remove();
    },
  };
}

function newsItem(item) {
  const s = item.sentiment;
  const label = s && LABELS.has(s.label) ? s.label : "other";
  const href = webUrl(item.url);
  const archive = item.known_from === "published";
  return h(
    "li",
    { className: "news-item", dataset: { id: String(item.id), knownFrom: item.known_from, label: s ? s.label : "none" } },
    h(
      "div",
      { className: "news-meta" },
      h(
        "time",
        {
          dateTime: item.known_at,
          title: archive
            ? `Known from its publication time (an archive item): ${new Date(item.known_at).toLocaleString()}`
            : `Received ${new Date(item.known_at).toLocaleString()}`,
        },
        when(item.known_at),
      ),
      archive ? h("span", { className: "published-tag" }, "published") : null,
      h("span", { className: "news-source" }, item.source),
    ),
    h(
      "p",
      { className: "news-headline" },
      href ? h("a", { href, target: "_blank", rel: "noopener noreferrer" }, item.headline) : item.headline,
    ),
    s
      ? h(
        "p",
        { className: "news-score" },
        h("span", { className: `news-label label-${label}` }, s.label),
        " ",
        h("span", { className: "news-value" }, signed(Number(s.score))),
        " ",
        h("span", { className: "news-scorer muted" }, `by ${s.scorer}`),
      )
      : h("p", { className: "news-score muted" }, "not scored yet"),
  );
}

/** The URL if it is http(s), else null: a `javascript:` or `data:` link is never made. */
function webUrl(text) {
  if (!text) return null;
  try {
    const url = new URL(text);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

function changeArrow(change) {
  if (change == null || Math.abs(Number(change)) < 0.005) return { direction: "none", text: "" };
  return Number(change) > 0 ? { direction: "up", text: "▲" } : { direction: "down", text: "▼" };
}

function signed(value) {
  return `${value > 0 ? "+" : ""}${value.toFixed(2)}`;
}

function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

function hours(value) {
  if (value == null) return "window";
  return value % 24 === 0 ? plural(value / 24, "day") : `${value} h`;
}

function howToGetNews() {
  return [
    "import an archive with ", h("code", {}, "aitrader data news FILE"),
    " or set ", h("code", {}, "NEWS_SOURCE=alpaca"), "; the sentiment job scores it.",
  ];
}
