// Chat: the caller's conversations with the trading assistant, the thread of one, and a
// message box whose answer streams in as the model writes it (chat_stream.js). The trades
// an answer proposed or placed show as cards under it, and the trades waiting for approval
// in a queue beside, both with Approve for a trader (chat_trades.js), kept current by the
// `orders` topic (the header's orders badge says when that feed is cut).
import { api, caller, may } from "./app.js";
import { StreamError, streamAnswer } from "./chat_stream.js";
import { tradeDesk } from "./chat_trades.js";
import { h, when } from "./dom.js";
import { topicFeed } from "./feeds.js";

const HINT = "sign in as a trader to chat";

export function chatView(root) {
  const list = h("ul", { id: "chat-list", className: "chat-list" });
  const listEmpty = h("p", { className: "muted" }, "No conversation yet.");
  const newButton = h("button", { id: "chat-new", type: "button" }, "New conversation");
  const newError = h("p", { id: "chat-new-error", className: "error", role: "alert", hidden: true });
  const queue = h("ul", { id: "chat-queue", className: "chat-queue" });
  const queueEmpty = h("p", { className: "muted" }, "Nothing waits for approval.");
  const queueError = h("p", { className: "error", role: "alert", hidden: true });
  const title = h("h3", { id: "chat-thread-title" }, "No conversation chosen");
  const thread = h("ol", { id: "chat-thread", className: "chat-thread", "aria-live": "polite", "aria-labelledby": "chat-thread-title" });
  const input = h("textarea", { id: "chat-input", rows: 2, maxLength: 4000, placeholder: "buy 10 AAPL with stop 150 and take profit 200" });
  const send = h("button", { id: "chat-send", type: "submit" }, "Send");
  const hint = h("span", { id: "chat-hint", className: "muted", hidden: true }, HINT);
  const sendError = h("p", { id: "chat-send-error", className: "error", role: "alert", hidden: true });
  const form = h(
    "form",
    { id: "chat-form", className: "chat-form" },
    h("label", { htmlFor: "chat-input" }, "Message ", h("span", { className: "muted" }, "(Enter sends, Shift+Enter a new line)")),
    input,
    h("div", { className: "chat-form-row" }, send, hint),
    sendError,
  );
  root.replaceChildren(
    h(
      "section",
      { className: "chat", "aria-labelledby": "chat-title" },
      h("div", { className: "section-head" }, h("h2", { id: "chat-title" }, "Chat")),
      h(
        "div",
        { className: "chat-layout" },
        h("aside", { className: "chat-side" },
          h("nav", { "aria-label": "Conversations" }, newButton, newError, list, listEmpty),
          h("section", { "aria-labelledby": "chat-queue-title", className: "chat-queue-box" },
            h("h3", { id: "chat-queue-title" }, "Waiting for approval"), queue, queueEmpty, queueError)),
        h("div", { className: "chat-main" }, title, thread, form),
      ),
    ),
  );

  let who = null;
  let current = null; // the open conversation's id
  let busy = false; // an answer is streaming
  let stopped = false;
  const abort = new AbortController();
  const desk = tradeDesk({ canApprove: () => may(who, "trader"), queue, queueEmpty });

  function allowed() {
    const trader = may(who, "trader");
    newButton.disabled = !trader;
    send.disabled = !trader || busy || current == null;
    input.disabled = !trader || current == null;
    hint.hidden = trader;
    newButton.title = trader ? "" : HINT;
  }

  async function loadList(open) {
    const page = await api("/api/conversations?limit=100");
    list.replaceChildren(...page.items.map((c) => h("li", {}, h("button", {
      type: "button", className: "pick", dataset: { conversation: c.id },
      "aria-current": c.id === open ? "true" : null, onclick: () => openConversation(c.id),
    }, c.title, " ", h("span", { className: "muted" }, when(c.updated_at))))));
    listEmpty.hidden = page.items.length > 0;
    return page.items;
  }

  async function openConversation(id) {
    current = id;
    for (const button of list.querySelectorAll("button")) {
      if (Number(button.dataset.conversation) === id) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
    allowed();
    const detail = await api(`/api/conversations/${id}`);
    if (current !== id) return;
    title.textContent = detail.title;
    thread.replaceChildren(...detail.messages.map(messageItem));
    await refreshTrades();
    thread.lastElementChild?.scrollIntoView({ block: "end" });
  }

  function messageItem(message) {
    const item = h("li", { className: `msg msg-${message.role}`, dataset: { role: message.role, id: message.id } });
    fillMessage(item, message);
    return item;
  }

  function fillMessage(item, message) {
    const payload = message.payload || {};
    const proposals = (payload.answer && payload.answer.trades) || [];
    const trades = (payload.trades || []).map((t, i) => desk.card(t, proposals[i]));
    item.replaceChildren(
      h("p", { className: "msg-who muted" }, message.role === "user" ? "You" : "Assistant", " · ", when(message.created_at)),
      h("p", { className: "msg-text" }, message.content),
      trades.length ? h("div", { className: "trade-cards" }, trades) : null,
    );
    item.dataset.state = "done";
  }

  async function refreshTrades() {
    try {
      await desk.refresh();
      queueError.hidden = true;
    } catch (error) {
      queueError.textContent = `Could not read the trades: ${error.message}`;
      queueError.hidden = false;
    }
  }

  async function sendMessage() {
    const content = input.value.trim();
    if (!content || busy || current == null) return;
    busy = true;
    sendError.hidden = true;
    allowed();
    const conversation = current;
    const asked = h("li", { className: "msg msg-user", dataset: { role: "user" } }, h("p", { className: "msg-who muted" }, "You"), h("p", { className: "msg-text" }, content));
    const text = h("p", { className: "msg-text" });
    const note = h("p", { className: "error", role: "alert", hidden: true });
    const answer = h("li", { className: "msg msg-assistant", dataset: { role: "assistant", state: "streaming", pieces: 0 } },
      h("p", { className: "msg-who muted" }, "Assistant · writing…"), text, note);
    let shown = false;
    try {
      const reply = await streamAnswer(`/api/conversations/${conversation}/message/stream`, { content }, {
        signal: abort.signal,
        onToken(piece) {
          if (!shown) show();
          text.textContent += piece;
          answer.dataset.pieces = Number(answer.dataset.pieces) + 1;
        },
      });
      if (!shown) show();
      fillMessage(answer, reply);
      await refreshTrades();
    } catch (error) {
      if (stopped) return;
      if (!shown && !(error instanceof StreamError)) {
        sendError.textContent = `Not sent: ${error.message}`; // refused before any answer
        sendError.hidden = false;
      } else {
        if (!shown) show();
        answer.dataset.state = error.cut ? "cut" : "failed";
        note.replaceChildren(error.cut ? "The answer's stream was cut; what arrived is kept. " : `The answer failed: ${error.message} `);
        if (error.cut) {
          // The server goes on with a turn whose client left: what it stored is worth a look.
          note.append(h("button", { type: "button", onclick: () => openConversation(conversation) }, "Show what was stored"));
        }
        note.hidden = false;
      }
    } finally {
      busy = false;
      allowed();
      if (!stopped) loadList(current).catch(() => {});
    }

    function show() {
      shown = true;
      input.value = "";
      if (current === conversation) thread.append(asked, answer);
      answer.scrollIntoView({ block: "end" });
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sendMessage();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  newButton.addEventListener("click", async () => {
    newError.hidden = true;
    newButton.disabled = true;
    try {
      const made = await api("/api/conversations", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ title: `Conversation ${new Date().toLocaleString()}` }),
      });
      await loadList(made.id);
      await openConversation(made.id);
      input.focus();
    } catch (error) {
      newError.textContent = `Not created: ${error.message}`;
      newError.hidden = false;
    } finally {
      allowed();
    }
  });

  const feed = topicFeed({
    name: "orders",
    topics: ["orders"],
    onMessage: (_, order) => desk.noteOrder(order),
    onLive: () => refreshTrades(), // after a cut, what moved meanwhile
  });

  (async () => {
    who = await caller();
    if (stopped) return;
    allowed();
    try {
      const items = await loadList(null);
      if (items.length) await openConversation(items[0].id);
      else await refreshTrades();
    } catch (error) {
      newError.textContent = `Could not read the conversations: ${error.message}`;
      newError.hidden = false;
    }
  })();

  return {
    stop() {
      stopped = true;
      abort.abort();
      feed.stop();
    },
  };
}
