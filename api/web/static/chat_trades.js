// The trades of the chat: a card per trade the assistant proposed or placed, and the queue
// of trades waiting for a trader's approval, each with Approve (POST /api/trades/execute,
// the endpoint the CLI's `trades execute` uses). Every place that shows an intent is
// repainted from one record of it, kept current by the `orders` topic and by re-reading
// /api/trades/pending and /api/orders, so a card never says "waiting" after it was sent.
import { api } from "./app.js";
import { h, money } from "./dom.js";

const WORDS = {
  pending_approval: "waiting for approval",
  risk_rejected: "refused by the pre-trade checks",
  pending_submit: "being sent",
  partially_filled: "partly filled",
};

/** `canApprove()`: whether the caller may approve (asked at each repaint: it signs in late). */
export function tradeDesk({ canApprove, queue, queueEmpty }) {
  const known = new Map(); // intent id -> {status, reason, order_status, fill}
  const views = new Map(); // intent id -> [{status, fill, approve, error}]
  const sending = new Set(); // intents whose approval is on its way: a second click waits

  function learn(id, facts) {
    known.set(id, { ...(known.get(id) || {}), ...facts });
    for (const view of views.get(id) || []) paint(id, view);
  }

  function paint(id, view) {
    const facts = known.get(id) || {};
    const status = facts.order_status || facts.status || "unknown";
    const waiting = facts.status === "pending_approval" && !facts.order_status;
    let text = WORDS[status] || status.replaceAll("_", " ");
    if (facts.fill) text += ` at ${money(facts.fill)}`;
    if (facts.reason && !waiting) text += `: ${facts.reason}`;
    view.status.textContent = text;
    view.box.dataset.status = status;
    if (view.approve) {
      view.approve.hidden = !waiting;
      view.approve.disabled = !canApprove() || sending.has(id);
    }
    if (view.hint) view.hint.hidden = !waiting || canApprove();
  }

  /** The status line and, while it waits, Approve, of intent `id`; repainted as it moves. */
  function intentStatus(id, label) {
    const status = h("span", { className: "trade-status", role: "status" });
    const error = h("p", { className: "error", role: "alert", hidden: true });
    const approve = h("button", { type: "button", className: "approve", "aria-label": `Approve ${label}` }, "Approve");
    const hint = h("span", { className: "muted" }, "sign in as a trader to approve");
    const box = h("div", { className: "trade-state" }, status, " ", approve, " ", hint, error);
    const view = { box, status, approve, hint, error };
    approve.addEventListener("click", () => approveIntent(id, view));
    if (!views.has(id)) views.set(id, []);
    views.get(id).push(view);
    paint(id, view);
    return box;
  }

  async function approveIntent(id, view) {
    if (sending.has(id)) return; // a double click sends once
    sending.add(id);
    for (const each of views.get(id) || []) {
      each.error.hidden = true;
      paint(id, each);
    }
    try {
      const [outcome] = await api("/api/trades/execute", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ intent_ids: [id] }),
      });
      learn(id, { status: outcome.status, order_status: outcome.order_status, reason: outcome.reason });
      await refresh();
    } catch (error) {
      view.error.textContent = `Not approved: ${error.message}`;
      view.error.hidden = false;
      refresh().catch(() => {}); // e.g. approved meanwhile elsewhere: show where it stands
    } finally {
      sending.delete(id);
      for (const each of views.get(id) || []) paint(id, each);
    }
  }

  /** A card for one trade of an answer: its outcome (`IntentOutcome`) and the model's proposal. */
  function card(outcome, proposal = {}) {
    const id = outcome.intent_id;
    const label = `${outcome.side} ${Number(outcome.qty)} ${outcome.symbol}`;
    const prices = [
      ["Take profit", proposal.take_profit],
      ["Stop loss", proposal.stop_loss],
    ].filter(([, value]) => value != null);
    const facts = h("dl", { className: "trade-facts" }, prices.flatMap(([name, value]) => [h("dt", {}, name), h("dd", { className: "num" }, money(value))]));
    const body = [
      h("p", { className: "trade-title" }, h("span", { className: `side-${outcome.side}` }, outcome.side.toUpperCase()), " ", h("strong", {}, `${Number(outcome.qty)} ${outcome.symbol}`)),
      prices.length ? facts : null,
      proposal.reason ? h("p", { className: "muted trade-why" }, `Why: ${proposal.reason}`) : null,
    ];
    if (id == null) {
      // No intent could be made (no price): nothing to approve or follow.
      const why = outcome.reason ? `: ${outcome.reason}` : "";
      body.push(h("p", { className: "trade-state", dataset: { status: outcome.status } }, `${outcome.status.replaceAll("_", " ")}${why}`));
    } else {
      if (!known.has(id)) learn(id, { status: outcome.status, order_status: outcome.order_status, reason: outcome.reason });
      body.push(intentStatus(id, label));
    }
    return h("article", { className: "trade-card", dataset: { intent: id ?? "" }, "aria-label": `Trade: ${label}` }, body);
  }

  /** Re-read what waits and what was sent: the queue and every known intent's status. */
  async function refresh() {
    const [pending, orders] = await Promise.all([
      api("/api/trades/pending?limit=200"),
      api("/api/orders?limit=200&include=refused"),
    ]);
    const waiting = new Set(pending.items.map((p) => p.id));
    for (const order of orders.items) {
      if (order.intent_id != null && order.leg === "entry") noteOrder(order);
    }
    for (const refused of (orders.refused && orders.refused.items) || []) {
      if (known.has(refused.id)) learn(refused.id, { status: refused.status, reason: refused.reason });
    }
    for (const [id, facts] of known) {
      if (waiting.has(id) && !facts.order_status) learn(id, { status: "pending_approval" });
    }
    showQueue(pending.items);
  }

  /** An order's state (an `orders` topic message or a row of /api/orders). */
  function noteOrder(order) {
    if (order.intent_id == null || (order.leg && order.leg !== "entry")) return;
    learn(order.intent_id, {
      order_status: order.status,
      fill: order.avg_fill_price,
      reason: order.reject_reason || (known.get(order.intent_id) || {}).reason,
    });
  }

  function showQueue(items) {
    for (const [id, list] of views) views.set(id, list.filter((v) => v.box.isConnected));
    queue.replaceChildren(
      ...items.map((p) => {
        if (!known.has(p.id)) learn(p.id, { status: p.status });
        const label = `${p.side} ${Number(p.qty)} ${p.symbol}`;
        const exits = p.take_profit ? ` (take profit ${money(p.take_profit)}, stop ${money(p.stop_loss)})` : "";
        return h(
          "li",
          { dataset: { intent: p.id } },
          h("span", { className: `side-${p.side}` }, p.side.toUpperCase()),
          ` ${Number(p.qty)} ${p.symbol}${exits} `,
          h("span", { className: "muted" }, `#${p.id}, ${p.account}`),
          intentStatus(p.id, label),
        );
      }),
    );
    queueEmpty.hidden = items.length > 0;
  }

  return { card, refresh, noteOrder };
}
