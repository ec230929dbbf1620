// The kill switch: whether trading is halted (on all accounts or one), by whom and why,
// and for an admin the Halt and Resume buttons, each behind a confirmation step. The state
// comes from GET /api/trading/status (polled by the view) and from each flip's own answer.
import { api, may } from "./app.js";
import { h, when } from "./dom.js";

const ALL = "";

/**
 * The switch's panel. `show(status)` draws a `/api/trading/status` answer; `allow(who)`
 * enables the buttons for an admin only; `setAccounts(names)` offers each configured
 * account as a scope; `onFlip()` is called after each flip the server took.
 */
export function killSwitch({ onFlip } = {}) {
  const state = h("p", { id: "kill-state", className: "kill-state", role: "status" }, "Loading the switch…");
  const perAccount = h("ul", { id: "kill-accounts", className: "kill-accounts", hidden: true });
  const scope = h("select", { id: "kill-scope" }, h("option", { value: ALL }, "All accounts"));
  const scopeLabel = h("label", { className: "kill-scope", hidden: true }, "Scope ", scope);
  const reason = h("input", {
    id: "kill-reason", type: "text", maxLength: 1000, autocomplete: "off",
    placeholder: "market data looks wrong",
  });
  const halt = h("button", { id: "kill-halt", type: "submit", className: "danger", disabled: true }, "Halt trading…");
  const resume = h("button", { id: "kill-resume", type: "button", disabled: true }, "Resume trading…");
  const hint = h("p", { id: "kill-hint", className: "muted" }, "Sign in as an admin to halt or resume trading.");
  const error = h("p", { id: "kill-error", className: "error", role: "alert", hidden: true });
  const question = h("p", { id: "kill-confirm-text" });
  const yes = h("button", { id: "kill-confirm", type: "button", className: "danger" }, "Confirm");
  const no = h("button", { id: "kill-cancel", type: "button" }, "Cancel");
  const confirm = h(
    "div",
    { id: "kill-confirm-step", className: "kill-confirm", role: "group", "aria-labelledby": "kill-confirm-text", hidden: true },
    question, h("div", { className: "buttons" }, yes, no),
  );
  const form = h(
    "form",
    { id: "kill-form", className: "kill-form", "aria-describedby": "kill-hint" },
    scopeLabel,
    h("label", { htmlFor: "kill-reason" }, "Reason for a halt (shown with every order held)"),
    reason,
    h("div", { className: "buttons" }, halt, resume),
    hint, error, confirm,
  );
  const element = h(
    "section",
    { id: "kill-switch", className: "kill-switch", "aria-labelledby": "kill-title" },
    h("h3", { id: "kill-title" }, "Kill switch"),
    state, perAccount, form,
  );
  let pending = null; // the flip waiting for its confirmation: "halt" | "resume"

  function fail(message) {
    error.textContent = message;
    error.hidden = false;
  }

  function ask(action) {
    error.hidden = true;
    const where = scope.value === ALL ? "every account" : `account ${scope.value}`;
    if (action === "halt") {
      const why = reason.value.trim();
      if (!why) {
        fail("Say why before halting: the reason is shown with every order held.");
        reason.focus();
        return;
      }
      question.textContent = `Halt trading on ${where}? No order is sent until an admin resumes. Reason: ${why}`;
      yes.textContent = "Confirm halt";
    } else {
      question.textContent = `Resume trading on ${where}? Orders are sent again.`;
      yes.textContent = "Confirm resume";
    }
    pending = action;
    confirm.hidden = false;
    yes.focus();
  }

  function cancel() {
    pending = null;
    confirm.hidden = true;
  }

  async function flip() {
    const action = pending;
    if (!action) return;
    const body = scope.value === ALL ? {} : { account: scope.value };
    if (action === "halt") body.reason = reason.value.trim();
    yes.disabled = true;
    try {
      const status = await api(`/api/trading/${action}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      cancel();
      if (action === "halt") reason.value = "";
      show(status);
      state.focus();
      if (onFlip) onFlip();
    } catch (failure) {
      cancel();
      fail(`${action === "halt" ? "Halt" : "Resume"} refused: ${failure.message}`);
    } finally {
      yes.disabled = false;
    }
  }

  function show(status) {
    const halted = status.accounts.filter((a) => a.halted);
    const every = status.all_accounts;
    element.dataset.halted = String(halted.length > 0);
    let text;
    if (every && every.halted) {
      text = `Halted on all accounts by ${every.actor}, ${when(every.ts)}: ${every.reason || "no reason given"}`;
    } else if (halted.length) {
      text = `Halted on ${halted.map((a) => a.account).join(", ")}; the others trade.`;
    } else {
      const last = every ? ` (last resumed by ${every.actor}, ${when(every.ts)})` : "";
      text = `Trading: no halt${last}.`;
    }
    if (state.textContent !== text) state.textContent = text; // a live region: only news
    perAccount.replaceChildren(
      ...status.accounts.map((a) =>
        h(
          "li",
          { dataset: { account: a.account, halted: String(a.halted) } },
          h("strong", {}, a.account), ": ",
          a.halted ? `halted by ${a.halt.actor}, ${when(a.halt.ts)}: ${a.halt.reason || "no reason given"}` : "trading",
        ),
      ),
    );
  }

  function setAccounts(names) {
    scope.replaceChildren(
      h("option", { value: ALL }, "All accounts"),
      ...names.map((name) => h("option", { value: name }, name)),
    );
    scopeLabel.hidden = perAccount.hidden = names.length < 2;
  }

  function allow(who) {
    const admin = may(who, "admin");
    halt.disabled = resume.disabled = !admin;
    hint.hidden = admin;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ask("halt");
  });
  resume.addEventListener("click", () => ask("resume"));
  yes.addEventListener("click", flip);
  no.addEventListener("click", () => {
    cancel();
    halt.focus();
  });
  state.tabIndex = -1;
  return { element, show, allow, setAccounts };
}
