// The chairman's decisions of a council run: while the run waits for approval, an
// Approve / Reject choice per decision and one Send (POST /api/council/{id}/approve, the
// input `aitrader council approve` sends: every proposed decision approved except those
// rejected); after execution, each decision's trade intents and their orders.
import { api, may } from "./app.js";
import { h, money } from "./dom.js";

const COLUMNS = ["Symbol", "Action", "Weight", "Conviction", "Status", "Approval"];

export function decisionsPanel({ onSent }) {
  const choices = new Map(); // decision id -> "approve" | "reject", kept across re-reads
  let runId = null;
  let shownKey = "";
  let canApprove = false;

  const body = h("tbody");
  const empty = h("p", { id: "council-decisions-empty", className: "muted" }, "No decision yet.");
  const note = h("input", { id: "council-approve-note", name: "note", type: "text", maxLength: 2000, autocomplete: "off" });
  const send = h("button", { id: "council-send", type: "submit", "aria-describedby": "council-approve-answer" }, "Send approval");
  const answer = h("p", { id: "council-approve-answer", className: "muted", role: "status" });
  const form = h(
    "form",
    { id: "council-approve", className: "council-approve", hidden: true, onSubmit: submit },
    h("label", { htmlFor: "council-approve-note" }, "Note (optional) ", note),
    send,
    answer,
  );
  const element = h(
    "section",
    { className: "council-decisions", "aria-labelledby": "council-decisions-title" },
    h("h3", { id: "council-decisions-title" }, "Chairman's decisions"),
    h("div", { className: "table-scroll" },
      h("table", { id: "council-decisions" },
        h("caption", { className: "visually-hidden" }, "The chairman's decisions, with their orders once executed"),
        h("thead", {}, h("tr", {}, COLUMNS.map((c, i) => h("th", { scope: "col", className: [null, null, "num", "num conviction"][i] }, c)))),
        body)),
    empty,
    form,
  );

  /** Show `current` (/api/council/current) with `detail`'s chains (null before execution). */
  function render(current, detail, who) {
    const run = current.run;
    if (run.id !== runId) {
      runId = run.id;
      choices.clear();
      say("", "muted");
    }
    const waiting = current.waiting_for_approval;
    canApprove = waiting && may(who, "trader");
    const chains = new Map(((detail && detail.chains) || []).map((c) => [c.decision.id, c]));
    const key = JSON.stringify([current.decisions, waiting, canApprove, detail && detail.chains.map((c) => c.execution)]);
    form.hidden = !waiting || current.decisions.length === 0;
    send.disabled = !canApprove;
    if (waiting && !canApprove && !answer.textContent) say("Sign in as a trader to approve or reject.", "muted");
    if (key !== shownKey) {
      shownKey = key; // unchanged data keeps the rows, so focus and choices stay put
      body.replaceChildren(...current.decisions.flatMap((d) => rows(d, chains.get(d.id), waiting)));
      empty.hidden = current.decisions.length > 0;
    }
    summarise();
  }

  function rows(decision, chain, waiting) {
    const label = `${decision.symbol} ${decision.action}`;
    const tr = h(
      "tr",
      { id: `decision-${decision.id}`, dataset: { id: decision.id, symbol: decision.symbol, status: decision.status } },
      h("th", { scope: "row" }, decision.symbol),
      h("td", { className: `side-${decision.action}` }, decision.action),
      h("td", { className: "num" }, percent(decision.target_weight)),
      h("td", { className: "num conviction" }, money(decision.conviction)),
      h("td", { className: "decision-status" }, statusText(decision)),
      h("td", {}, waiting && decision.status === "proposed" ? toggle(decision, label) : ""),
    );
    // The rationale and the orders under the decision, full width: readable on a phone.
    const lines = chain ? chain.execution : [];
    return [tr, h("tr", { className: "council-exec", dataset: { decision: decision.id } },
      h("td", { colSpan: COLUMNS.length },
        h("p", { className: "council-why" }, decision.rationale),
        lines.length ? h("ul", {}, lines.map(executionLine)) : null))];
  }

  function toggle(decision, label) {
    const choice = choices.get(decision.id) || "approve";
    const name = `approval-${decision.id}`;
    const radio = (value, text) =>
      h("label", { className: "choice" },
        h("input", {
          type: "radio", name, value, checked: choice === value, disabled: !canApprove,
          onChange: () => {
            choices.set(decision.id, value);
            summarise();
          },
        }),
        ` ${text}`);
    return h("div", { role: "radiogroup", className: "council-choice", "aria-label": `Decision on ${label}` },
      radio("approve", "Approve"), radio("reject", "Reject"));
  }

  function proposedIds() {
    return [...body.querySelectorAll("tr[data-status='proposed']")].map((tr) => Number(tr.dataset.id));
  }

  function summarise() {
    const ids = proposedIds();
    const rejected = ids.filter((id) => choices.get(id) === "reject").length;
    send.textContent = `Send approval (${ids.length - rejected} approve, ${rejected} reject)`;
  }

  async function submit(event) {
    event.preventDefault();
    if (!canApprove) return;
    const reject = proposedIds().filter((id) => choices.get(id) === "reject");
    send.disabled = true;
    say("Sending…", "muted");
    try {
      const sent = await api(`/api/council/${runId}/approve`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ reject, note: note.value.trim() || null }),
      });
      const approved = sent.approve.length;
      say(`Sent by ${sent.approver}: ${approved} approved, ${sent.reject.length} rejected. Executing…`, "muted");
      onSent();
    } catch (failure) {
      say(failure.message, "error"); // the server's reason: 409 not paused, 422 unknown decision
    } finally {
      send.disabled = !canApprove;
    }
  }

  function say(text, kind) {
    answer.textContent = text;
    answer.className = kind;
  }

  return { element, render };
}

function executionLine(line) {
  const intent = line.intent;
  const head = `${line.account}: ${intent.side} ${quantity(intent.qty)} ${intent.symbol}, ${intent.status.replace(/_/g, " ")}`;
  const failed = Object.entries((intent.risk_checks && intent.risk_checks.checks) || {})
    .filter(([, check]) => check && check.passed === false)
    .map(([name]) => name);
  return h(
    "li",
    { className: "intent", dataset: { intent: intent.id, status: intent.status } },
    h("span", {}, head),
    intent.reject_reason
      ? h("span", { className: "error" }, ` (${failed.length ? `${failed.join(", ")}: ` : ""}${intent.reject_reason})`)
      : null,
    line.orders.length
      ? h("ul", { className: "orders" }, line.orders.map((order) => orderLine(order)))
      : null,
  );
}

function orderLine(order) {
  const price = order.limit_price || order.stop_price;
  const filled = Number(order.filled_qty) > 0
    ? `, filled ${quantity(order.filled_qty)}${order.avg_fill_price ? ` @ ${money(order.avg_fill_price)}` : ""}`
    : "";
  return h(
    "li",
    { className: "order", dataset: { order: order.id, status: order.status, leg: order.leg } },
    `${order.leg.replace(/_/g, " ")}: ${order.side} ${quantity(order.qty)} ${order.order_type}`,
    price ? ` ${money(price)}` : "",
    `, ${order.status}${filled}`,
    order.reject_reason ? h("span", { className: "error" }, ` (${order.reject_reason})`) : null,
  );
}

function statusText(decision) {
  if (decision.status === "proposed") return "proposed";
  const by = decision.approved_by ? ` by ${decision.approved_by}` : "";
  return `${decision.status}${by}${decision.note ? `: ${decision.note}` : ""}`;
}

function percent(value) {
  return `${money(Number(value) * 100, 1)}%`;
}

export function quantity(value) {
  return Number(value).toLocaleString("en-US", { maximumFractionDigits: 8 });
}
