// One stored backtest (GET /api/backtests/{id}): its metrics beside buy-and-hold's, both
// equity curves drawn (Lightweight Charts, vendored), a sweep's every parameter set, and
// the chosen set's trades. Plain rendering of what the server stored; nothing is live.
import { LineSeries, themedChart } from "./charts.js";
import { h, money, row, when } from "./dom.js";

const SHOWN_TRADES = 200;
const PERCENT = new Set(["total_return", "cagr", "volatility", "max_drawdown", "win_rate", "exposure"]);
const MONEY = new Set(["final_equity", "expectancy", "open_pnl"]);
const ORDER = [
  "total_return", "cagr", "volatility", "sharpe", "sortino", "calmar", "max_drawdown",
  "max_drawdown_duration", "win_rate", "profit_factor", "expectancy", "exposure", "turnover",
  "trades", "open_trades", "open_pnl", "final_equity",
];
const SET_COLUMNS = ["sharpe", "total_return", "max_drawdown", "trades"];

export function backtestResult(root, run) {
  const title = `Backtest #${run.id}: ${run.strategy} on ${run.symbols.join(", ")}`;
  const holder = h("div", { className: "chart equity-chart", id: "equity-chart", role: "img",
    "aria-label": `${title}: equity against buy-and-hold` });
  root.replaceChildren(
    h(
      "section",
      { className: "detail backtest", "aria-labelledby": "backtest-title" },
      h("h2", { id: "backtest-title" }, title),
      h("p", { className: "muted" },
        `${run.kind}, ${run.start} to ${run.end}; chosen parameters ${paramsText(run.best_params)}; requested by ${run.requested_by || "—"}, finished ${when(run.finished_at)}.`),
      h("h3", {}, "Metrics"),
      metricsTable(run),
      h("h3", {}, "Equity"),
      holder,
      h("p", { className: "legend muted" },
        h("span", { className: "swatch strategy" }), "strategy ",
        h("span", { className: "swatch benchmark" }), "buy-and-hold"),
      run.param_results_total > 1 ? setsSection(run) : null,
      tradesSection(run),
    ),
  );
  const chart = drawEquity(holder, run.equity);
  return { stop: () => chart.remove() };
}

function metricsTable(run) {
  const stored = Object.keys(run.metrics || {});
  const names = [...ORDER.filter((n) => stored.includes(n)), ...stored.filter((n) => !ORDER.includes(n))];
  return h("div", { className: "table-scroll" }, h(
    "table",
    { id: "backtest-metrics", className: "metrics" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Metric"),
      h("th", { scope: "col", className: "num" }, "Strategy"),
      h("th", { scope: "col", className: "num" }, "Buy-and-hold"))),
    h("tbody", {}, names.map((name) => row([
      h("th", { scope: "row" }, name.replaceAll("_", " ")),
      h("td", { className: "num" }, metric(name, run.metrics[name])),
      h("td", { className: "num" }, metric(name, (run.benchmark || {})[name])),
    ], { dataset: { metric: name } }))),
  ));
}

function setsSection(run) {
  const names = Object.keys(run.param_results[0].params);
  const best = paramsText(run.best_params);
  const sets = run.param_results.slice().sort((a, b) => number(b.metrics.sharpe) - number(a.metrics.sharpe));
  return h("div", {},
    h("h3", {}, `Parameter sets (${run.param_results_total})`),
    h("div", { className: "table-scroll" }, h(
      "table",
      { id: "backtest-sets" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Segment"),
        names.map((n) => h("th", { scope: "col", className: "num" }, n)),
        SET_COLUMNS.map((m) => h("th", { scope: "col", className: "num" }, m.replaceAll("_", " "))))),
      h("tbody", {}, sets.map((set) => row([
        h("td", {}, set.segment),
        ...names.map((n) => h("td", { className: "num" }, String(set.params[n]))),
        ...SET_COLUMNS.map((m) => h("td", { className: "num" }, metric(m, set.metrics[m]))),
      ], { "aria-selected": String(paramsText(set.params) === best) }))),
    )),
    run.param_results.length < run.param_results_total
      ? h("p", { className: "muted" }, `The first ${run.param_results.length} sets shown.`) : null,
  );
}

function tradesSection(run) {
  const shown = run.trades.slice(0, SHOWN_TRADES);
  const head = ["Symbol", "Side", "Entry", "Entry price", "Exit", "Exit price", "Qty", "P&L", "Return", "Exit reason"];
  return h("div", {},
    h("h3", {}, `Trades (${run.trades_total})`),
    shown.length === 0 ? h("p", { className: "muted" }, "No trade.") : h("div", { className: "table-scroll" }, h(
      "table",
      { id: "backtest-trades" },
      h("thead", {}, h("tr", {}, head.map((name, i) =>
        h("th", { scope: "col", className: [3, 5, 6, 7, 8].includes(i) ? "num" : "" }, name)))),
      h("tbody", {}, shown.map((t) => row([
        h("th", { scope: "row" }, t.symbol),
        h("td", { className: t.direction === "long" ? "side-buy" : "side-sell" }, t.direction),
        day(t.entry_ts),
        h("td", { className: "num" }, money(t.entry_price)),
        day(t.exit_ts),
        h("td", { className: "num" }, money(t.exit_price)),
        h("td", { className: "num" }, money(t.qty, 0)),
        h("td", { className: `num ${Number(t.pnl) < 0 ? "loss" : "gain"}` }, money(t.pnl)),
        h("td", { className: "num" }, `${(t.return_pct * 100).toFixed(2)}%`),
        t.exit_reason,
      ]))),
    )),
    run.trades_total > shown.length
      ? h("p", { className: "muted" }, `The first ${shown.length} trades shown.`) : null,
  );
}

function drawEquity(holder, points) {
  const chart = themedChart(holder);
  const strategy = chart.addSeries(LineSeries, { color: "#4aa3ff", lineWidth: 2 });
  const benchmark = chart.addSeries(LineSeries, { color: "#8a96a3", lineWidth: 1 });
  const time = (p) => Math.floor(Date.parse(p.ts) / 1000);
  strategy.setData(points.filter((p) => p.equity != null).map((p) => ({ time: time(p), value: p.equity })));
  benchmark.setData(points.filter((p) => p.benchmark != null).map((p) => ({ time: time(p), value: p.benchmark })));
  chart.timeScale().fitContent();
  holder.dataset.points = String(points.length);
  return chart;
}

function metric(name, value) {
  if (value == null) return "";
  if (typeof value === "string") return { inf: "∞", "-inf": "−∞", nan: "n/a" }[value] || value;
  if (PERCENT.has(name)) return `${(value * 100).toFixed(2)}%`;
  if (MONEY.has(name)) return money(value);
  if (Number.isInteger(value)) return String(value);
  return value.toFixed(2);
}

function number(value) {
  return typeof value === "number" ? value : value === "inf" ? Infinity : -Infinity;
}

function paramsText(params) {
  return Object.entries(params || {}).sort().map(([k, v]) => `${k}=${v}`).join(", ") || "—";
}

function day(iso) {
  return h("td", {}, iso ? iso.slice(0, 10) : "open");
}
