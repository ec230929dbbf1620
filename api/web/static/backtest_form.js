// The form that starts a backtest job (POST /api/jobs, type "backtest"): a strategy on
// symbols between two days; a parameter given several values (`fast=5,10,20`) makes a
// sweep over every combination, ranked by the chosen metric. The server validates: its
// one-line reason is shown beside the button, and nothing is started.
import { api } from "./app.js";
import { h } from "./dom.js";

const STRATEGIES = {
  sma_cross: "fast=10 slow=50",
  rsi_reversion: "window=14 lower=30 upper=70",
  macd: "fast=12 slow=26 signal=9",
  bollinger_breakout: "window=20 k=2",
};
const RANKS = ["sharpe", "sortino", "total_return", "cagr", "calmar", "profit_factor"];

export function backtestForm(root, { onStarted }) {
  const field = (label, input, hint) =>
    h("label", {}, label, input, hint ? h("small", { className: "muted" }, hint) : null);
  const strategy = h("select", { name: "strategy" },
    Object.keys(STRATEGIES).map((name) => h("option", { value: name }, name)));
  const symbols = h("input", { name: "symbols", value: "AAPL, MSFT", required: true, autocomplete: "off" });
  const start = h("input", { name: "start", type: "date", value: "2016-01-01", required: true });
  const end = h("input", { name: "end", type: "date", value: "2019-12-31", required: true });
  const params = h("input", { name: "params", value: STRATEGIES.sma_cross, autocomplete: "off" });
  const optimise = h("select", { name: "optimise" }, RANKS.map((m) => h("option", { value: m }, m)));
  const cash = h("input", { name: "init_cash", type: "number", value: "100000", min: "1", step: "any" });
  const submit = h("button", { type: "submit", disabled: true }, "Start backtest"); // until the role is known
  const hint = h("p", { className: "muted", id: "backtest-hint" });
  const outcome = h("p", { id: "backtest-outcome", role: "status" });
  strategy.addEventListener("change", () => {
    params.value = STRATEGIES[strategy.value];
  });

  const form = h(
    "form",
    { id: "backtest-form", "aria-labelledby": "backtest-form-title", noValidate: true },
    h("h3", { id: "backtest-form-title" }, "New backtest"),
    field("Strategy", strategy),
    field("Symbols", symbols, "comma separated"),
    h("div", { className: "dates" }, field("From", start), field("To", end)),
    field("Parameters", params, "name=value; several values (fast=5,10,20) sweep"),
    field("Rank a sweep by", optimise),
    field("Cash", cash),
    h("div", { className: "buttons" }, submit),
    hint,
    outcome,
  );
  root.replaceChildren(form);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (submit.disabled) return;
    submit.disabled = true;
    outcome.className = "muted";
    outcome.textContent = "Starting…";
    const body = {
      type: "backtest",
      params: {
        strategy: strategy.value,
        symbols: symbols.value.split(/[\s,]+/).filter(Boolean).map((s) => s.toUpperCase()),
        start: start.value,
        end: end.value,
        params: parseParams(params.value),
        optimise: optimise.value,
        config: { init_cash: cash.value === "" ? cash.value : Number(cash.value) },
      },
    };
    try {
      const job = await api("/api/jobs", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      outcome.className = "muted";
      outcome.textContent = `Started job #${job.id}.`;
      onStarted(job);
    } catch (error) {
      outcome.className = "error";
      outcome.textContent = error.message; // the server's reason, in one line
    } finally {
      submit.disabled = !allowed;
    }
  });

  let allowed = false;
  return {
    /** Whether this tab's caller may start one (trader); else the button says who may. */
    allow(yes) {
      allowed = yes;
      submit.disabled = !yes;
      hint.textContent = yes ? "" : "Sign in as a trader to start a backtest.";
      hint.hidden = yes;
    },
  };
}

/** `fast=5,10 slow=50` -> {fast: [5, 10], slow: 50}; what is not a number is sent as typed,
 * so the server names the problem. */
function parseParams(text) {
  const out = {};
  for (const part of text.split(/[\s;]+/).filter(Boolean)) {
    const [name, raw = ""] = part.split("=", 2);
    const values = raw.split(",").filter((v) => v !== "").map((v) => (Number.isNaN(Number(v)) ? v : Number(v)));
    out[name] = values.length === 1 ? values[0] : values;
  }
  return out;
}
