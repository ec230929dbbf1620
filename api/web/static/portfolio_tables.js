// The portfolio's order tables, redrawn on each poll: working orders with each bracket's
// exits (take-profit, stop-loss) grouped under their entry, the trade intents refused with
// their reasons, and the recent fills. Text only: no server string becomes markup.
import { h, money, row, when } from "./dom.js";

const OPEN = new Set(["pending_submit", "new", "submitted", "accepted", "partially_filled"]);
const LEG_NAMES = { entry: "entry", take_profit: "take-profit", stop_loss: "stop-loss" };

/** Working orders, an entry followed by its exits; a filled entry is shown while an exit
 * still works (it is what protects the position). Returns how many groups were drawn. */
export function drawOrders(body, orders) {
  const exits = new Map();
  for (const order of orders) {
    if (order.parent_id == null) continue;
    if (!exits.has(order.parent_id)) exits.set(order.parent_id, []);
    exits.get(order.parent_id).push(order);
  }
  const entries = new Map(orders.filter((o) => o.parent_id == null).map((o) => [o.id, o]));
  const rows = [];
  let groups = 0;
  for (const order of orders) {
    const legs = (order.parent_id == null ? exits.get(order.id) : null) || [];
    const orphan = order.parent_id != null && !entries.has(order.parent_id); // entry on an older page
    if (order.parent_id != null && !orphan) continue;
    if (!OPEN.has(order.status) && !legs.some((leg) => OPEN.has(leg.status))) continue;
    groups += 1;
    rows.push(orderRow(order, false));
    legs.sort((a, b) => a.leg.localeCompare(b.leg));
    for (const leg of legs) rows.push(orderRow(leg, true));
  }
  body.replaceChildren(...rows);
  return groups;
}

function orderRow(order, isLeg) {
  const price = order.limit_price ?? order.stop_price;
  const label = isLeg ? `↳ ${LEG_NAMES[order.leg] || order.leg}` : order.symbol;
  return row(
    [
      h("th", { scope: "row", className: isLeg ? "leg-name" : "" }, label),
      h("td", { className: `side-${order.side}` }, order.side),
      h("td", { className: "num" }, quantity(order.qty)),
      h("td", { className: `order-status order-${order.status}` }, order.status.replaceAll("_", " ")),
      h("td", {}, order.order_type),
      h("td", { className: "num price" }, price == null ? "" : money(price)),
      h("td", { className: "num" }, order.avg_fill_price == null ? "" : money(order.avg_fill_price)),
      h("td", {}, order.account),
      h("td", {}, when(order.created_at)),
    ],
    {
      className: isLeg ? "order-leg" : "order-entry",
      dataset: { orderId: String(order.id), leg: order.leg, symbol: order.symbol, status: order.status },
    },
  );
}

/** Trade intents a check or the broker refused, newest first, with the reason. */
export function drawRefused(body, refused) {
  body.replaceChildren(
    ...refused.map((intent) =>
      row(
        [
          h("th", { scope: "row" }, intent.symbol),
          h("td", { className: `side-${intent.side}` }, intent.side),
          h("td", { className: "num" }, quantity(intent.qty)),
          h("td", { className: "reason" }, intent.reason || ""),
          h("td", {}, intent.checks.join(", ") || intent.status),
          h("td", {}, when(intent.refused_at)),
          h("td", {}, intent.account),
        ],
        { dataset: { intentId: String(intent.id), symbol: intent.symbol } },
      ),
    ),
  );
  return refused.length;
}

/** Executions newest first; `price` is each fill's own. */
export function drawFills(body, fills) {
  body.replaceChildren(
    ...fills.map((fill) =>
      row(
        [
          h("td", {}, when(fill.ts)),
          h("th", { scope: "row" }, fill.symbol),
          h("td", { className: `side-${fill.side}` }, fill.side),
          h("td", { className: "num" }, quantity(fill.qty)),
          h("td", { className: "num" }, money(fill.price)),
          h("td", { className: "num" }, money(fill.fee)),
          h("td", {}, fill.account),
        ],
        { dataset: { fillId: String(fill.id), symbol: fill.symbol } },
      ),
    ),
  );
  return fills.length;
}

/** A quantity as stored (whole shares usually, fractions kept to 4 places). */
export function quantity(value) {
  return Number(value).toLocaleString("en-US", { maximumFractionDigits: 4 });
}

/** A titled table in a horizontal scroller, with a note for when it is empty. */
export function tableSection(id, title, columns, emptyText) {
  const body = h("tbody");
  const empty = h("p", { id: `${id}-empty`, className: "muted" }, emptyText);
  const section = h(
    "section",
    { className: "portfolio-part", "aria-labelledby": `${id}-title` },
    h("h3", { id: `${id}-title` }, title),
    h(
      "div",
      { className: "table-scroll" },
      h(
        "table",
        { id },
        h("thead", {}, h("tr", {}, columns.map(([name, num]) => h("th", { scope: "col", className: num ? "num" : "" }, name)))),
        body,
      ),
    ),
    empty,
  );
  return { section, body, empty };
}
