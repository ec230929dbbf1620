// The dashboard's charts: TradingView's Lightweight Charts (vendored, decision 0021) in the
// page's dark theme, so every view's chart looks the same and the theme is set once.
import { ColorType, createChart } from "./vendor/lightweight-charts.standalone.production.mjs";

export {
  AreaSeries,
  CandlestickSeries,
  LineSeries,
  createSeriesMarkers,
} from "./vendor/lightweight-charts.standalone.production.mjs";

const LINE = "#263140";

/** A chart filling `holder`, in the page's colours; `timeVisible` for intraday times. */
export function themedChart(holder, { timeVisible = false } = {}) {
  return createChart(holder, {
    autoSize: true,
    layout: { background: { type: ColorType.Solid, color: "#161c23" }, textColor: "#d8dee6" },
    grid: { vertLines: { color: LINE }, horzLines: { color: LINE } },
    timeScale: { borderColor: LINE, timeVisible },
    rightPriceScale: { borderColor: LINE },
  });
}
