// Signals: the pattern engine's signals over the WebSocket (`trading_signals`), the
// stored ones of the last day first, then live; filters by symbol, kind and side.
// On a lost connection it reconnects with backoff and resumes from the last signal seen.
import { topicFeed } from "./feeds.js";

const KEEP = 500;
const CATCH_UP_MS = 24 * 3600 * 1000;

export function signalsView(root) {
  root.innerHTML = `
    <section aria-labelledby="signals-title">
      <div class="section-head">
        <h2 id="signals-title">Signals</h2>
        <div class="filters">
          <label>Symbol <input id="signal-symbol" type="search" placeholder="AAPL"></label>
          <label>Kind <select id="signal-kind"><option value="">all</option></select></label>
          <label>Side <select id="signal-side">
            <option value="">both</option><option value="buy">buy</option><option value="sell">sell</option>
          </select></label>
        </div>
      </div>
      <table id="signals">
        <caption class="visually-hidden">Trading signals, newest first</caption>
        <thead><tr><th scope="col">Time</th><th scope="col">Symbol</th><th scope="col">Kind</th>
          <th scope="col">Side</th><th scope="col" class="num">Score</th><th scope="col" class="num">Price</th></tr></thead>
        <tbody></tbody>
      </table>
      <p id="signals-empty" class="muted">No signal yet.</p>
    </section>`;
  const body = root.querySelector("#signals tbody");
  const empty = root.querySelector("#signals-empty");
  const symbolFilter = root.querySelector("#signal-symbol");
  const kindFilter = root.querySelector("#signal-kind");
  const sideFilter = root.querySelector("#signal-side");
  const seen = new Set();
  const kinds = new Set();
  let lastTs = new Date(Date.now() - CATCH_UP_MS).toISOString();
  let feed = null;

  for (const input of [symbolFilter, kindFilter, sideFilter]) input.addEventListener("input", applyFilters);

  // Signals are queued as they come and drawn once per animation frame, so a burst costs
  // one layout; a hidden tab keeps at most KEEP of them until it is shown again.
  let queued = [];
  let frame = 0;

  function add(signal) {
    const key = `${signal.strategy}|${signal.symbol}|${signal.kind}|${signal.ts}`;
    if (seen.has(key)) return; // a resume sends the last one again: it is recognised
    seen.add(key);
    if (!lastTs || at(signal.ts) > at(lastTs)) lastTs = signal.ts;
    if (!kinds.has(signal.kind)) {
      kinds.add(signal.kind);
      const option = document.createElement("option");
      option.value = option.textContent = signal.kind;
      kindFilter.append(option);
    }
    queued.push({ key, signal });
    if (queued.length > 2 * KEEP) queued = newest(queued, seen);
    if (!frame) frame = requestAnimationFrame(draw);
  }

  function draw() {
    frame = 0;
    const batch = newest(queued, seen).reverse(); // oldest first: each goes on top
    queued = [];
    for (const { key, signal } of batch) {
      const tr = signalRow(signal);
      tr.signalKey = key;
      const top = body.firstElementChild;
      const after = !top || at(top.dataset.ts) <= at(signal.ts)
        ? top // the usual case: newer than every row shown
        : [...body.children].find((row) => at(row.dataset.ts) < at(signal.ts));
      body.insertBefore(tr, after || null); // newest first
      filterRow(tr);
    }
    while (body.children.length > KEEP) {
      seen.delete(body.lastElementChild.signalKey); // what is dropped may be shown again
      body.lastElementChild.remove();
    }
    if (batch.length) empty.hidden = true;
  }

  function filterRow(tr) {
    const symbols = symbolFilter.value.toUpperCase().split(/[\s,]+/).filter(Boolean);
    tr.hidden =
      (symbols.length > 0 && !symbols.some((s) => tr.dataset.symbol.startsWith(s))) ||
      (kindFilter.value && tr.dataset.kind !== kindFilter.value) ||
      (sideFilter.value && tr.dataset.side !== sideFilter.value);
  }

  function applyFilters() {
    for (const tr of body.children) filterRow(tr);
  }

  feed = topicFeed({
    name: "signals",
    topics: ["trading_signals"],
    since: () => lastTs, // a reconnect resumes from the last signal kept
    onMessage: (_, signal) => add(signal),
  });
  return {
    stop() {
      feed.stop();
      cancelAnimationFrame(frame);
    },
  };
}

/** An ISO time as a number: the feed writes `+00:00` and the API `Z`, and as text
 * `...:00Z` sorts after `...:00.5Z`. */
const at = (ts) => Date.parse(ts);

/** The newest KEEP of `queued`, newest first; the keys of the others leave `seen`. */
function newest(queued, seen) {
  const sorted = queued.slice().sort((a, b) => at(b.signal.ts) - at(a.signal.ts));
  for (const { key } of sorted.slice(KEEP)) seen.delete(key);
  return sorted.slice(0, KEEP);
}

function signalRow(signal) {
  const tr = document.createElement("tr");
  Object.assign(tr.dataset, { symbol: signal.symbol, kind: signal.kind, side: signal.side, ts: signal.ts });
  const cells = [
    new Date(signal.ts).toLocaleTimeString(),
    signal.symbol,
    signal.kind,
    signal.side,
    signal.score == null ? "" : Number(signal.score).toFixed(2),
    signal.price == null ? "" : Number(signal.price).toFixed(2),
  ];
  cells.forEach((text, i) => {
    const cell = document.createElement(i === 1 ? "th" : "td");
    if (i === 1) cell.scope = "row";
    if (i >= 4) cell.className = "num";
    if (i === 3) cell.className = `side-${signal.side}`;
    cell.textContent = text;
    tr.append(cell);
  });
  return tr;
}
