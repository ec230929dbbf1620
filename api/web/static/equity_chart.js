// The equity curve and its drawdown, from the booked snapshots (GET /api/portfolio/history,
// oldest first). Every account's latest equity is summed at each snapshot, so "all accounts"
// is one curve. The first load pages through the whole history; each refresh after it asks
// only from the newest snapshot on. Drawn with the vendored Lightweight Charts: equity as an
// area, the drawdown from the running peak (in %) in a pane below.
import { api } from "./app.js";
import { h, money } from "./dom.js";
import { AreaSeries, themedChart } from "./charts.js";

const PAGE = 500;
const MAX_PAGES = 20; // 10,000 snapshots: far more than a curve on a screen needs

export function equityChart() {
  const holder = h("div", { id: "equity-chart", className: "chart equity-chart", role: "img", "aria-label": "Equity curve and drawdown" });
  const note = h("p", { id: "equity-note", className: "muted" }, "Loading the equity curve…");
  const element = h(
    "section",
    { className: "portfolio-part", "aria-labelledby": "equity-title" },
    h("h3", { id: "equity-title" }, "Equity and drawdown"),
    holder,
    note,
  );
  let chart = null;
  let equity = null;
  let drawdown = null;
  let snapshots = new Map(); // account|ts -> snapshot
  let newest = null; // the newest snapshot's ts: where the next refresh starts
  let drawn = ""; // what is drawn, to skip redrawing the same curve
  let epoch = 0; // bumped by reset(): an answer for the account picked before is dropped

  function build() {
    chart = themedChart(holder, { timeVisible: true });
    equity = chart.addSeries(AreaSeries, {
      lineColor: "#4aa3ff", topColor: "rgba(74, 163, 255, 0.35)", bottomColor: "rgba(74, 163, 255, 0.02)",
      lineWidth: 2, title: "equity",
    });
    drawdown = chart.addSeries(
      AreaSeries,
      {
        lineColor: "#ef5350", topColor: "rgba(239, 83, 80, 0.05)", bottomColor: "rgba(239, 83, 80, 0.35)",
        lineWidth: 1, title: "drawdown %", invertFilledArea: true,
        priceFormat: { type: "custom", formatter: percent },
      },
      1,
    );
    const panes = chart.panes();
    if (panes.length > 1) {
      panes[0].setStretchFactor(3);
      panes[1].setStretchFactor(1);
    }
  }

  /** Fetch the snapshots since the newest one seen (`query`: the account filter;
   * `options()`: each request's fetch options). */
  async function refresh(query, options = () => ({})) {
    const mine = epoch;
    const since = newest ? `&since=${encodeURIComponent(newest)}` : "";
    let offset = 0;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const answer = await api(`/api/portfolio/history?limit=${PAGE}&offset=${offset}${since}${query}`, options());
      if (mine !== epoch) return;
      for (const s of answer.items) snapshots.set(`${s.account}|${s.ts}`, s);
      if (answer.next_offset == null) break;
      offset = answer.next_offset;
    }
    for (const s of snapshots.values()) if (!newest || Date.parse(s.ts) > Date.parse(newest)) newest = s.ts;
    draw();
  }

  function draw() {
    const points = curve([...snapshots.values()]);
    if (!points.length) {
      note.textContent = "No value booked yet: the curve starts with the first trade.";
      return;
    }
    const key = `${points.length}|${points[points.length - 1].time}|${points[points.length - 1].value}`;
    if (key === drawn) return;
    drawn = key;
    if (!chart) build();
    let peak = -Infinity;
    const dd = points.map(({ time, value }) => {
      peak = Math.max(peak, value);
      return { time, value: peak > 0 ? (value / peak - 1) * 100 : 0 };
    });
    equity.setData(points);
    drawdown.setData(dd);
    chart.timeScale().fitContent();
    const deepest = Math.min(...dd.map((p) => p.value));
    const last = points[points.length - 1].value;
    note.textContent = `${snapshots.size} snapshots; equity ${money(last)}, deepest drawdown ${percent(deepest)}.`;
  }

  return {
    element,
    refresh,
    /** The equity the day started from: the last value before local midnight, else the
     * day's first; null with no snapshot. */
    dayStart() {
      const points = curve([...snapshots.values()]);
      const midnight = new Date().setHours(0, 0, 0, 0) / 1000;
      const before = points.filter((p) => p.time < midnight);
      const from = before.length ? before[before.length - 1] : points[0];
      return from ? from.value : null;
    },
    /** Forget the curve (another account was picked). */
    reset() {
      epoch += 1;
      snapshots = new Map();
      newest = null;
      drawn = "";
      if (chart) {
        equity.setData([]);
        drawdown.setData([]);
      }
      note.textContent = "Loading the equity curve…";
    },
    stop() {
      if (chart) chart.remove();
    },
  };
}

/** One point a second (the chart's resolution; the later snapshot wins), each the sum of
 * every account's latest equity at that instant. */
function curve(snapshots) {
  snapshots.sort((a, b) => Date.parse(a.ts) - Date.parse(b.ts)); // "…:25Z" vs "…:25.5Z": not as text
  const latest = new Map();
  const points = [];
  for (const s of snapshots) {
    latest.set(s.account, Number(s.equity));
    const time = Math.floor(Date.parse(s.ts) / 1000);
    const value = [...latest.values()].reduce((sum, v) => sum + v, 0);
    if (points.length && points[points.length - 1].time === time) points[points.length - 1].value = value;
    else points.push({ time, value });
  }
  return points;
}

function percent(value) {
  return `${Math.abs(value) < 0.005 ? "0.00" : value.toFixed(2)}%`; // no "-0.00%"
}
