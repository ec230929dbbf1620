// One symbol in detail: its daily candles (stored bars) with today's live tail, the
// pattern signals marked on them, and its order book (NBBO and depth), refreshed.
import { api } from "./app.js";
import { CandlestickSeries, createSeriesMarkers, themedChart } from "./charts.js";

const BARS = 250; // about a year of daily bars
const BOOK_EVERY_MS = 1000;
const DAY = 86400;

export function symbolDetail(root, symbol) {
  root.innerHTML = `
    <section class="detail" aria-labelledby="detail-title">
      <h2 id="detail-title"></h2>
      <div class="chart" id="chart" role="img"></div>
      <p id="chart-note" class="muted"></p>
      <h3>Order book</h3>
      <p id="book-state" class="muted">Loading the book…</p>
      <table id="book" hidden>
        <thead><tr><th scope="col" class="num">Bid size</th><th scope="col" class="num">Bid</th>
          <th scope="col" class="num">Ask</th><th scope="col" class="num">Ask size</th></tr></thead>
        <tbody></tbody>
      </table>
    </section>`;
  root.querySelector("#detail-title").textContent = symbol;
  const holder = root.querySelector("#chart");
  holder.setAttribute("aria-label", `${symbol} daily candles`);
  const note = root.querySelector("#chart-note");
  const chart = themedChart(holder);
  const candles = chart.addSeries(CandlestickSeries, {
    upColor: "#2fbf71", downColor: "#ef5350", borderVisible: false,
    wickUpColor: "#2fbf71", wickDownColor: "#ef5350",
  });
  const markers = createSeriesMarkers(candles, []);
  let last = null; // the newest candle, which live prices move
  let stopped = false;
  let bookTimer = null;

  async function loadBars() {
    try {
      const page = await api(`/api/market/bars/${encodeURIComponent(symbol)}?limit=${BARS}`);
      const bars = page.items.slice().reverse().map((b) => ({
        time: Math.floor(Date.parse(b.ts) / 1000),
        open: Number(b.open), high: Number(b.high), low: Number(b.low), close: Number(b.close),
      }));
      candles.setData(bars);
      last = bars.length ? { ...bars[bars.length - 1] } : null;
      const newest = last ? new Date(last.time * 1000).toISOString().slice(0, 10) : null;
      note.textContent = newest
        ? `${bars.length} daily bars to ${newest}; the last candle moves with live prices.`
        : "No stored bars: the chart shows live prices only.";
      chart.timeScale().fitContent();
      await loadSignals();
    } catch (error) {
      note.textContent = `Bars unavailable: ${error.message}`;
    }
  }

  async function loadSignals() {
    try {
      const signals = await api(`/api/signals?symbol=${encodeURIComponent(symbol)}&limit=200`);
      const marks = signals
        .map((s) => ({
          time: Math.floor(Date.parse(s.ts) / 1000 / DAY) * DAY,
          position: s.side === "buy" ? "belowBar" : "aboveBar",
          color: s.side === "buy" ? "#2fbf71" : "#ef5350",
          shape: s.side === "buy" ? "arrowUp" : "arrowDown",
          text: s.kind,
        }))
        .sort((a, b) => a.time - b.time);
      markers.setMarkers(marks);
    } catch (error) {
      note.textContent += ` Signals unavailable: ${error.message}`;
    }
  }

  async function loadBook() {
    const state = root.querySelector("#book-state");
    const table = root.querySelector("#book");
    try {
      const book = await api(`/api/book/${encodeURIComponent(symbol)}?levels=5`);
      const nbbo = book.nbbo;
      state.textContent = nbbo.bid == null
        ? "No quotes yet."
        : `NBBO ${nbbo.bid.toFixed(2)} (${nbbo.bid_venue}) × ${nbbo.ask.toFixed(2)} (${nbbo.ask_venue}), spread ${nbbo.spread.toFixed(2)}${book.valid ? "" : " — not valid to quote from"}`;
      fillDepth(table.tBodies[0], book.venues);
      table.hidden = false;
    } catch (error) {
      state.textContent = `Book unavailable: ${error.message}`;
      table.hidden = true;
    }
    if (!stopped) bookTimer = setTimeout(loadBook, BOOK_EVERY_MS);
  }

  loadBars();
  loadBook();
  return {
    /** A live price for this symbol: today's candle moves with it. */
    price(price, ts) {
      const time = Math.floor(Date.parse(ts) / 1000 / DAY) * DAY;
      if (!last || time > last.time) last = { time, open: price, high: price, low: price, close: price };
      else last = { ...last, high: Math.max(last.high, price), low: Math.min(last.low, price), close: price };
      candles.update(last);
    },
    stop() {
      stopped = true;
      clearTimeout(bookTimer);
      chart.remove();
    },
  };
}

function fillDepth(body, venues) {
  const bids = new Map();
  const asks = new Map();
  for (const venue of venues) {
    if (!venue.valid) continue;
    for (const level of venue.bids) bids.set(level.price, (bids.get(level.price) || 0) + level.size);
    for (const level of venue.asks) asks.set(level.price, (asks.get(level.price) || 0) + level.size);
  }
  const bidRows = [...bids].sort((a, b) => b[0] - a[0]).slice(0, 5);
  const askRows = [...asks].sort((a, b) => a[0] - b[0]).slice(0, 5);
  const rows = [];
  for (let i = 0; i < Math.max(bidRows.length, askRows.length); i += 1) {
    const tr = document.createElement("tr");
    const [bid, bidSize] = bidRows[i] || [null, null];
    const [ask, askSize] = askRows[i] || [null, null];
    for (const [value, digits] of [[bidSize, 0], [bid, 2], [ask, 2], [askSize, 0]]) {
      const td = document.createElement("td");
      td.className = "num";
      td.textContent = value == null ? "" : Number(value).toFixed(digits);
      tr.append(td);
    }
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}
