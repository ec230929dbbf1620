// Portfolio: the accounts' value now (cash, equity, the day's P&L), the positions with their
// P&L recomputed on every live price (SSE), the kill switch, the equity curve with its
// drawdown, working orders with their bracket exits, refused intents and recent fills.
// The books are read again at once when the `orders` or `fills` topic says something moved,
// and polled every POLL_MS besides (the kill switch has no topic; a missed message is caught
// up); the view says when the last refresh failed. Only the positions' prices stream.
import { api, caller } from "./app.js";
import { h, money, signed } from "./dom.js";
import { priceFeed, topicFeed } from "./feeds.js";
import { equityChart } from "./equity_chart.js";
import { killSwitch } from "./kill_switch.js";
import { drawFills, drawOrders, drawRefused, quantity, tableSection } from "./portfolio_tables.js";

const POLL_MS = 2000;
const SETTLE_MS = 150; // a bracket's three orders and its fill arrive together: one re-read
const WAIT_MS = 10000; // a request hung this long counts as failed: the poll goes on
const CUT = new Set(["reconnecting", "closed"]);

export function portfolioView(root) {
  const picker = h("select", { id: "portfolio-account" }, h("option", { value: "" }, "All accounts"));
  const pickerLabel = h("label", { className: "account-picker", hidden: true }, "Account ", picker);
  // Not a live region: it changes every poll. The switch's state and its errors are.
  const refreshNote = h("p", { id: "portfolio-refresh", className: "muted" }, "Loading…");
  const figures = {};
  const summary = h(
    "dl",
    { id: "portfolio-summary", className: "summary" },
    [["cash", "Cash"], ["equity", "Equity"], ["day", "Day P&L"], ["unrealized", "Unrealised P&L"]].map(([key, label]) =>
      h("div", {}, h("dt", {}, label), (figures[key] = h("dd", { id: `summary-${key}`, className: "num" }, "—"))),
    ),
  );
  const priceNote = h("p", { id: "positions-prices", className: "muted" });
  const positions = tableSection(
    "positions", "Positions",
    // What matters first (a phone sees the first columns; the rest scroll inside).
    [["Symbol"], ["Qty", 1], ["Unrealised P&L", 1], ["Price", 1], ["Avg price", 1], ["Value", 1], ["Realised P&L", 1], ["Account"]],
    "No position held.",
  );
  positions.section.append(priceNote);
  const orders = tableSection(
    "open-orders", "Working orders",
    [["Order"], ["Side"], ["Qty", 1], ["Status"], ["Type"], ["Limit/stop", 1], ["Filled at", 1], ["Account"], ["Created"]],
    "No working order.",
  );
  const refused = tableSection(
    "refused", "Refused intents",
    [["Symbol"], ["Side"], ["Qty", 1], ["Reason"], ["Check"], ["Refused"], ["Account"]],
    "No intent refused.",
  );
  const fills = tableSection(
    "fills", "Recent fills",
    [["Time"], ["Symbol"], ["Side"], ["Qty", 1], ["Price", 1], ["Fee", 1], ["Account"]],
    "No fill yet.",
  );
  const chart = equityChart();
  const accountsNote = h("p", { className: "error", role: "alert", hidden: true });
  const switcher = killSwitch({ onFlip: () => refreshNow() });
  root.replaceChildren(
    h(
      "section",
      { className: "portfolio", "aria-labelledby": "portfolio-title" },
      h("div", { className: "section-head" }, h("h2", { id: "portfolio-title" }, "Portfolio"), pickerLabel),
      refreshNote, accountsNote, summary,
      h(
        "div",
        { className: "portfolio-grid" },
        h("div", { className: "portfolio-switch" }, switcher.element),
        h("div", { className: "portfolio-main" }, positions.section, orders.section, refused.section, fills.section),
        h("div", { className: "portfolio-curve" }, chart.element),
      ),
    ),
  );

  let held = []; // the positions of the last poll
  let cash = null;
  const live = new Map(); // symbol -> the latest streamed price
  let timer = null;
  let generation = 0; // a refresh of an older account pick is dropped
  let stopped = false;

  const lastDrawn = new Map(); // table -> the answer it shows: an unchanged one is not redrawn

  /** Whether `answer` differs from what the table shows (a redraw would lose a selection). */
  function changed(table, answer) {
    const text = JSON.stringify(answer);
    if (lastDrawn.get(table) === text) return false;
    lastDrawn.set(table, text);
    return true;
  }

  function query() {
    return picker.value ? `&account=${encodeURIComponent(picker.value)}` : "";
  }

  async function refresh(mine) {
    const wait = () => ({ signal: AbortSignal.timeout(WAIT_MS) });
    const parts = [
      ["portfolio", api(`/api/portfolio?${query().slice(1)}`, wait())],
      ["orders", api(`/api/orders?include=refused&limit=100${query()}`, wait())],
      ["fills", api(`/api/fills?limit=20${query()}`, wait())],
      ["kill switch", api("/api/trading/status", wait())],
      ["equity curve", chart.refresh(query(), wait)],
    ];
    const results = await Promise.allSettled(parts.map(([, promise]) => promise));
    if (stopped || mine !== generation) return;
    timer = setTimeout(() => refresh(mine), POLL_MS); // first: a drawing error must not end the poll
    const [book, orderPage, fillPage, status] = results.map((r) => (r.status === "fulfilled" ? r.value : null));
    if (book) {
      held = book.positions;
      cash = Number(book.cash);
      drawPositions();
    }
    if (orderPage && changed("orders", orderPage)) {
      orders.empty.hidden = drawOrders(orders.body, orderPage.items) > 0;
      refused.empty.hidden = drawRefused(refused.body, orderPage.refused ? orderPage.refused.items : []) > 0;
    }
    if (fillPage && changed("fills", fillPage)) fills.empty.hidden = drawFills(fills.body, fillPage.items) > 0;
    if (status) switcher.show(status);
    const failed = results.map((r, i) => [parts[i][0], r]).filter(([, r]) => r.status === "rejected");
    const now = new Date().toLocaleTimeString();
    refreshNote.className = failed.length ? "error" : "muted";
    refreshNote.textContent = failed.length
      ? `Last refresh failed at ${now} (${failed.map(([name, r]) => `${name}: ${r.reason.message}`).join("; ")}); showing the last data received.`
      : `Updated ${now}; refreshed every ${POLL_MS / 1000} s.`;
  }

  function refreshNow() {
    clearTimeout(timer);
    generation += 1;
    refresh(generation);
  }

  /** Positions and the summary at the latest prices: the poll's, else the stream's. */
  function drawPositions() {
    let value = 0;
    let unrealized = 0;
    const rows = held.map((p) => {
      const price = live.has(p.symbol) ? live.get(p.symbol) : p.price == null ? null : Number(p.price);
      const qty = Number(p.qty);
      const pnl = price == null ? null : qty * (price - Number(p.avg_price));
      if (price != null) {
        value += qty * price;
        unrealized += pnl;
      }
      return h(
        "tr",
        { dataset: { symbol: p.symbol, account: p.account } },
        h("th", { scope: "row" }, p.symbol),
        h("td", { className: "num qty" }, quantity(p.qty)),
        h("td", { className: `num pnl ${tone(pnl)}` }, pnl == null ? "" : signed(pnl)),
        h("td", { className: "num price" }, price == null ? "no price" : money(price)),
        h("td", { className: "num avg" }, money(p.avg_price)),
        h("td", { className: "num value" }, price == null ? "" : money(qty * price)),
        h("td", { className: `num realized ${tone(Number(p.realized_pnl))}` }, signed(p.realized_pnl)),
        h("td", {}, p.account),
      );
    });
    positions.body.replaceChildren(...rows);
    positions.empty.hidden = rows.length > 0;
    if (cash == null) return;
    const equity = cash + value;
    const start = chart.dayStart();
    figures.cash.textContent = money(cash);
    figures.equity.textContent = money(equity);
    setSigned(figures.unrealized, unrealized);
    setSigned(figures.day, start == null ? null : equity - start);
  }

  /** Who may flip the switch, and the accounts to pick from (the books poll meanwhile). */
  async function start() {
    caller().then((who) => stopped || switcher.allow(who));
    try {
      const names = (await api("/api/accounts")).map((a) => a.name);
      if (stopped) return;
      for (const name of names) picker.append(h("option", { value: name }, name));
      pickerLabel.hidden = names.length < 2;
      switcher.setAccounts(names);
    } catch (failure) {
      accountsNote.textContent = `Accounts unavailable: ${failure.message}`;
      accountsNote.hidden = false;
    }
  }

  picker.addEventListener("change", () => {
    chart.reset();
    lastDrawn.clear();
    held = [];
    cash = null;
    refreshNow();
  });

  const feed = priceFeed({
    onPrices: (prices) => {
      let mine = false;
      for (const price of prices) {
        live.set(price.symbol, price.price);
        mine = mine || held.some((p) => p.symbol === price.symbol);
      }
      if (mine) drawPositions();
    },
  });
  // The header's badge says when prices are cut; here too, beside the P&L they move.
  const badge = document.getElementById("feed-prices");
  function notePrices() {
    const cut = badge && CUT.has(badge.dataset.state);
    priceNote.className = cut ? "error" : "muted";
    priceNote.textContent = cut
      ? "Live prices are cut (reconnecting): P&L is at the last price seen."
      : "P&L moves with live prices.";
  }
  let settle = null;
  let reconnect = false;
  const books = topicFeed({
    name: "orders",
    topics: ["orders", "fills"],
    onMessage: () => {
      clearTimeout(settle);
      settle = setTimeout(refreshNow, SETTLE_MS);
    },
    onLive: () => {
      if (reconnect) refreshNow(); // what moved while the feed was cut
      reconnect = true;
    },
  });
  const watch = new MutationObserver(notePrices);
  if (badge) watch.observe(badge, { attributes: true, attributeFilter: ["data-state"] });
  notePrices();
  refreshNow();
  start();

  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      clearTimeout(settle);
      feed.stop();
      books.stop();
      watch.disconnect();
      chart.stop();
    },
  };
}

function tone(value) {
  return value > 0 ? "up" : value < 0 ? "down" : "";
}

function setSigned(cell, value) {
  cell.textContent = value == null ? "—" : signed(value);
  cell.className = `num ${tone(value)}`;
}
