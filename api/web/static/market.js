// Market: every streamed symbol with its live price (SSE), the day's change, a flash on
// each change, its news sentiment (sentiment.js) and a sparkline of the prices seen since
// the page opened. A symbol picked shows its chart and book, and the news behind its sentiment.
import { priceFeed } from "./feeds.js";
import { symbolDetail } from "./detail.js";
import { sentimentColumn, symbolNews } from "./sentiment.js";

const HISTORY = 60; // points per sparkline
const FLASH_MS = 400; // how long a changed price stays highlighted

export function marketView(root) {
  root.innerHTML = `
    <div class="market-layout">
    <section class="market" aria-labelledby="market-title">
      <div class="section-head">
        <h2 id="market-title">Market</h2>
        <label class="filter">Filter <input id="symbol-filter" type="search" placeholder="AAPL, MSFT"></label>
      </div>
      <table id="prices">
        <caption class="visually-hidden">Live prices</caption>
        <thead><tr>
          <th scope="col">Symbol</th><th scope="col" class="num">Price</th>
          <th scope="col" class="num">Change</th><th scope="col" class="num">%</th>
          <th scope="col" class="num sentiment">Sentiment</th><th scope="col" class="trend">Trend</th>
        </tr></thead>
        <tbody></tbody>
      </table>
      <p id="prices-empty" class="muted">Waiting for prices…</p>
    </section>
    <div class="detail-column"><div id="detail"></div><div id="symbol-news"></div></div>
    </div>`;
  const body = root.querySelector("#prices tbody");
  const empty = root.querySelector("#prices-empty");
  const filter = root.querySelector("#symbol-filter");
  const rows = new Map();
  let detail = null;
  let news = null;
  let selected = null;

  function select(symbol) {
    if (detail) detail.stop();
    if (news) news.stop();
    selected = symbol;
    for (const [name, row] of rows) row.tr.setAttribute("aria-selected", String(name === symbol));
    detail = symbolDetail(root.querySelector("#detail"), symbol);
    news = symbolNews(root.querySelector("#symbol-news"), symbol);
  }

  const sentiment = sentimentColumn({
    onSelect: (symbol) => {
      select(symbol);
      news.focus();
    },
    onUpdate: (symbol) => {
      if (news && symbol === selected) news.refresh();
    },
  });

  filter.addEventListener("input", () => {
    const wanted = filter.value.toUpperCase().split(/[\s,]+/).filter(Boolean);
    for (const [symbol, row] of rows) {
      row.tr.hidden = wanted.length > 0 && !wanted.some((w) => symbol.startsWith(w));
    }
  });

  // Prices are kept as they come and drawn once per animation frame: a batch of 30
  // changes costs one layout and one paint, and a hidden tab draws nothing until shown.
  const pending = new Map(); // symbol -> { price, flash } not drawn yet
  let frame = 0;
  const flashes = new Flashes();

  function receive(price, flash) {
    let row = rows.get(price.symbol);
    if (!row) {
      row = addRow(price.symbol);
      rows.set(price.symbol, row);
      empty.hidden = true;
    }
    row.history.push(price.price);
    if (row.history.length > HISTORY) row.history.shift();
    // Every price reaches the candle (its high and low), drawn or not: the chart draws
    // on its own animation frame.
    if (detail && price.symbol === selected) detail.price(price.price, price.ts);
    const earlier = pending.get(price.symbol);
    pending.set(price.symbol, { price, flash: flash || Boolean(earlier && earlier.flash) });
    if (!frame) frame = requestAnimationFrame(draw);
  }

  function draw() {
    frame = 0;
    for (const [symbol, { price, flash }] of pending) {
      const row = rows.get(symbol);
      row.price.textContent = price.price.toFixed(2);
      row.change.textContent = signed(price.change, 2);
      row.pct.textContent = `${signed(price.change_pct, 2)}%`;
      row.tr.dataset.trend = price.change > 0 ? "up" : price.change < 0 ? "down" : "flat";
      drawSparkline(row.line, row.history);
      if (flash && price.direction) flashes.flash(row.price, price.direction > 0 ? "flash-up" : "flash-down");
    }
    pending.clear();
  }

  function addRow(symbol) {
    const tr = document.createElement("tr");
    tr.dataset.symbol = symbol;
    const cells = ["symbol", "price num", "change num", "pct num", "trend"].map((name) => {
      const cell = document.createElement(name === "symbol" ? "th" : "td");
      cell.className = name;
      tr.append(cell);
      return cell;
    });
    cells[0].scope = "row";
    const pick = document.createElement("button");
    pick.type = "button";
    pick.className = "pick";
    pick.textContent = symbol;
    pick.setAttribute("aria-label", `Show ${symbol}'s chart and book`);
    pick.addEventListener("click", () => select(symbol));
    cells[0].append(pick);
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 100 24");
    svg.setAttribute("class", "sparkline");
    svg.setAttribute("aria-hidden", "true");
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    svg.append(line);
    cells[4].append(svg);
    tr.insertBefore(sentiment.cell(symbol), cells[4]);
    const after = [...body.children].find((other) => other.dataset.symbol > symbol);
    body.insertBefore(tr, after || null);
    return { tr, price: cells[1], change: cells[2], pct: cells[3], line, history: [] };
  }

  const feed = priceFeed({
    onPrices: (prices, fresh) => {
      for (const price of prices) receive(price, fresh);
    },
  });
  return {
    stop() {
      feed.stop();
      sentiment.stop();
      cancelAnimationFrame(frame);
      flashes.stop();
      if (detail) detail.stop();
      if (news) news.stop();
    },
  };
}

/**
 * The flash on a changed price: a class held for FLASH_MS, then removed, all by one timer.
 * No CSS animation: 30 fading cells at 2 changes a second would repaint at 60 frames a
 * second without end, and the browser on a trader's desk would spend a core on it.
 */
class Flashes {
  constructor() {
    this.until = new Map(); // cell -> time its flash ends
    this.timer = null;
  }

  flash(cell, kind) {
    cell.classList.remove(kind === "flash-up" ? "flash-down" : "flash-up");
    cell.classList.add(kind);
    this.until.set(cell, performance.now() + FLASH_MS);
    if (!this.timer) this.timer = setTimeout(() => this.fade(), FLASH_MS);
  }

  fade() {
    this.timer = null;
    const now = performance.now();
    let next = Infinity;
    for (const [cell, end] of this.until) {
      if (end <= now + 1) {
        cell.classList.remove("flash-up", "flash-down");
        this.until.delete(cell);
      } else next = Math.min(next, end);
    }
    if (next < Infinity) this.timer = setTimeout(() => this.fade(), next - now);
  }

  stop() {
    clearTimeout(this.timer);
  }
}

function signed(value, digits) {
  const text = value.toFixed(digits);
  return value > 0 ? `+${text}` : text;
}

function drawSparkline(line, values) {
  const low = Math.min(...values);
  const high = Math.max(...values);
  const span = high - low || 1;
  const step = values.length > 1 ? 100 / (values.length - 1) : 0;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(22 - ((v - low) / span) * 20).toFixed(1)}`);
  line.setAttribute("points", points.join(" "));
}
