// The dashboard's shell: views by URL hash, the API token of this tab, and the state of
// each live feed shown in the header. Plain ES modules, no build step, nothing from a CDN.
// A view's module is imported when it is first opened: a view that fails to load (or to
// start) says so in its place, and the header and the other views keep working.

const VIEWS = {
  market: ["./market.js", "marketView"],
  signals: ["./signals.js", "signalsView"],
  suggestions: ["./suggestions.js", "suggestionsView"],
  council: ["./council.js", "councilView"],
  portfolio: ["./portfolio.js", "portfolioView"],
  chat: ["./chat.js", "chatView"],
  jobs: ["./jobs.js", "jobsView"],
  models: ["./models.js", "modelsView"],
};
const TOKEN_KEY = "aitrader.token";

export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** A JSON request to our own API, with this tab's token; throws with the server's detail,
 * the error's `problem` being the answer's body (a 422's `errors` name each bad field). */
export async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  const response = await fetch(path, { ...options, headers });
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const detail = body && (body.detail || body.title);
    const failure = new Error(typeof detail === "string" ? detail : `${response.status} ${response.statusText}`);
    failure.problem = body;
    throw failure;
  }
  return body;
}

const ROLES = ["viewer", "trader", "admin"];
let known = null; // { token, caller } of the last /api/auth/me answer

/** Who this tab is to the server ({actor, role, token_id}); null if it cannot say. */
export async function caller() {
  if (known && known.token === session.token) return known.caller;
  try {
    known = { token: session.token, caller: await api("/api/auth/me") };
  } catch {
    return null;
  }
  return known.caller;
}

/** Whether `who` (from `caller()`) holds `role` or a higher one. */
export function may(who, role) {
  return Boolean(who) && ROLES.indexOf(who.role) >= ROLES.indexOf(role);
}

/** A stream URL with this tab's token (EventSource and WebSocket cannot send headers). */
export function withToken(path) {
  if (!session.token) return path;
  const url = new URL(path, location.origin);
  url.searchParams.set("access_token", session.token);
  return url.pathname + url.search;
}

/** Show a feed's state in the header: connecting, live, reconnecting or closed. */
export function feedState(name, state) {
  const badge = document.getElementById(`feed-${name}`);
  if (!badge) return;
  badge.dataset.state = state;
  badge.title = `${name}: ${state}`;
  badge.setAttribute("aria-label", `${name} feed ${state}`);
}

let current = null;
let routed = 0; // which route() call is the newest: an older one's import may end later

async function route() {
  const name = location.hash.slice(1) || "market";
  const [path, exported] = VIEWS[name] || VIEWS.market;
  const turn = ++routed;
  if (current) current.stop();
  current = null;
  const root = document.getElementById("view");
  root.replaceChildren();
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  try {
    const view = (await import(path))[exported];
    if (turn !== routed) return; // another view was asked for meanwhile
    current = view(root);
  } catch (failure) {
    if (turn !== routed) return;
    const note = document.createElement("p");
    note.className = "error";
    note.setAttribute("role", "alert");
    note.textContent = `This view could not load (${failure.message}). The other views still work; reload the page to try again.`;
    root.replaceChildren(note);
  }
}

async function showCaller() {
  const who = document.getElementById("who");
  const button = document.getElementById("sign-in");
  if (!session.token) {
    who.textContent = "anonymous (local)";
    button.textContent = "Sign in";
    return;
  }
  try {
    const me = await api("/api/auth/me");
    who.textContent = `${me.actor} (${me.role})`;
  } catch (error) {
    who.textContent = "token refused";
  }
  button.textContent = "Sign out";
}

function setUpSignIn() {
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token");
  const error = document.getElementById("token-error");
  document.getElementById("sign-in").addEventListener("click", () => {
    if (session.token) {
      session.token = null;
      showCaller();
      route();
      return;
    }
    error.hidden = true;
    input.value = "";
    dialog.showModal();
  });
  document.getElementById("token-cancel").addEventListener("click", () => dialog.close());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    session.token = input.value.trim();
    try {
      await api("/api/auth/me");
    } catch (failure) {
      session.token = null;
      error.textContent = failure.message;
      error.hidden = false;
      return;
    }
    dialog.close();
    showCaller();
    route();
  });
}

window.addEventListener("hashchange", route);
setUpSignIn();
showCaller();
route();
