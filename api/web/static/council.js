// Council: the week's council run as it moves. A trader starts one (POST /api/jobs, type
// council); its stages follow the `job_updates` topic live (each move re-reads
// /api/council/current); then the research, the pitches with their peer reviews, the
// chairman's decisions (approved or rejected here while the run waits), the orders they
// became, and the spend by stage and model. The decisions live in council_decisions.js,
// the reports and costs in council_reports.js.
import { api, caller, may } from "./app.js";
import { decisionsPanel } from "./council_decisions.js";
import { costsPanel, pitchesPanel, researchPanel } from "./council_reports.js";
import { h } from "./dom.js";
import { topicFeed } from "./feeds.js";

const STAGES = [
  ["research", "Research"],
  ["pitches", "Pitches"],
  ["review", "Peer review"],
  ["chairman", "Chairman"],
  ["approval", "Approval"],
  ["execution", "Execution"],
];
const COUNCIL_JOBS = new Set(["council", "research"]); // both sit a council run
const CUT = new Set(["reconnecting", "closed"]);
let prefectUi = null; // the server's answer to /api/prefect, asked once per page

async function prefectUiUrl() {
  if (!prefectUi) prefectUi = api("/api/prefect").catch(() => ({ ui_url: null }));
  return (await prefectUi).ui_url;
}

export function councilView(root) {
  let who = null;
  let shown = null; // { current, detail }: the last /api/council/current and /{id} read
  let followed = null; // the newest council job's last update (from the feed or our start)
  const seen = new Map(); // job id -> its last status, stage and run: re-read on a move only
  let loading = null;
  let again = false;
  let stopped = false;

  const startNote = h("p", { id: "council-start-note", className: "muted", role: "status" });
  const startButton = h(
    "button",
    { id: "council-start-button", type: "submit", disabled: true, "aria-describedby": "council-start-note" },
    "Start council",
  );
  const asOf = h("input", { id: "council-as-of", name: "as_of", type: "date" });
  const universe = h("input", {
    id: "council-universe", name: "universe", type: "text", placeholder: "every stored symbol",
    autocomplete: "off",
  });
  const approval = h(
    "select",
    { id: "council-approval", name: "approval" },
    h("option", { value: "manual" }, "manual (pause for approval)"),
    h("option", { value: "auto" }, "auto"),
  );
  const startForm = h(
    "form",
    { id: "council-start", className: "council-start", "aria-labelledby": "council-start-title", onSubmit: start },
    h("h3", { id: "council-start-title" }, "Start this week's council"),
    h("div", { className: "filters" },
      h("label", { htmlFor: "council-as-of" }, "As of ", asOf),
      h("label", { htmlFor: "council-universe" }, "Universe ", universe),
      h("label", { htmlFor: "council-approval" }, "Approval ", approval),
      startButton),
    h("p", { className: "muted small" }, "As of blank: the latest stored day. Universe: symbols separated by spaces or commas."),
    startNote,
  );
  const runLine = h("p", { id: "council-run", className: "muted" }, "Loading…");
  const prefect = h("p", { id: "council-prefect", className: "muted small", hidden: true });
  const stageItems = new Map(
    STAGES.map(([key, label]) => [
      key,
      h("li", { dataset: { stage: key, state: "not reached" } },
        h("span", { className: "stage-name" }, label),
        h("span", { className: "stage-state" }, "not reached"),
        h("span", { className: "stage-outcome muted" })),
    ]),
  );
  const stages = h("ol", { id: "council-stages", className: "council-stages", "aria-label": "Stages of the run" }, [...stageItems.values()]);
  const status = h("p", { id: "council-status", className: "council-status", role: "status", "aria-live": "polite" });
  const feedNote = h("p", { id: "council-feed-note", className: "error", hidden: true },
    "Live updates are cut: reconnecting. The run goes on; this page catches up when they are back.");
  const why = h("ul", { id: "council-why", className: "council-notes muted", hidden: true });
  const decisions = decisionsPanel({ onSent: () => load() });
  const research = researchPanel();
  const pitches = pitchesPanel();
  const costs = costsPanel();

  root.replaceChildren(
    h("section", { className: "council", "aria-labelledby": "council-title" },
      h("div", { className: "section-head" }, h("h2", { id: "council-title" }, "Council"), runLine),
      prefect, startForm, stages, status, feedNote, why,
      decisions.element, research.element, pitches.element, costs.element),
  );

  caller().then((found) => {
    who = found;
    const trader = may(who, "trader");
    startButton.disabled = !trader;
    if (!trader) say(startNote, "Sign in as a trader to start a council.", "muted");
    if (shown) decisions.render(shown.current, shown.detail, who);
  });

  async function start(event) {
    event.preventDefault();
    const params = { approval: approval.value };
    if (asOf.value) params.as_of = asOf.value;
    const symbols = universe.value.toUpperCase().split(/[\s,]+/).filter(Boolean);
    if (symbols.length) params.universe = symbols;
    startButton.disabled = true;
    say(startNote, "Starting…", "muted");
    try {
      const job = await api("/api/jobs", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ type: "council", params }),
      });
      follow({ id: job.id, type: job.type, status: job.status, stage: null, council_run_id: null, flow_run_id: job.flow_run_id });
      say(startNote, `Started job #${job.id}.`, "muted");
    } catch (failure) {
      say(startNote, failure.message, "error");
    } finally {
      startButton.disabled = !may(who, "trader");
    }
  }

  function follow(update) {
    if (!followed || update.id >= followed.id) followed = update;
    const key = `${update.status}|${update.stage}|${update.council_run_id}`;
    if (seen.get(update.id) === key) return;
    seen.set(update.id, key);
    showStatus();
    load();
  }

  /** Re-read the run; calls made while one is in flight are folded into one more read. */
  function load() {
    if (loading) {
      again = true;
      return loading;
    }
    loading = (async () => {
      do {
        again = false;
        await loadOnce();
      } while (again && !stopped);
    })().finally(() => (loading = null));
    return loading;
  }

  async function loadOnce() {
    let current;
    try {
      // The list first: before the first sitting it is empty, where /current is a 404
      // (which the browser would log as an error on every visit).
      const newest = await api("/api/council?limit=1");
      if (newest.items.length === 0) {
        if (stopped) return;
        runLine.textContent = "No council has sat yet.";
        showStatus();
        return;
      }
      current = await api("/api/council/current");
    } catch (failure) {
      if (stopped) return;
      runLine.textContent = failure.message;
      showStatus();
      return;
    }
    const run = current.run;
    const reached = (stage) => stageOf(current, stage) !== "not reached";
    const quiet = (promise) => promise.catch((failure) => ({ error: failure.message }));
    const executed = reached("execution") || run.status !== "running";
    const [detail, notes, pitched, spent] = await Promise.all([
      executed ? quiet(api(`/api/council/${run.id}`)) : null,
      reached("research") ? quiet(api("/api/research/current")) : null,
      reached("pitches") ? quiet(api("/api/pitches/current")) : null,
      quiet(api(`/api/council/${run.id}/costs`)),
    ]);
    if (stopped) return;
    shown = { current, detail: detail && !detail.error ? detail : null };
    // A run's as-of is the instant its day ended: the day it decided on is the one before.
    const asOfDay = new Date(Date.parse(run.as_of) - 1).toISOString().slice(0, 10);
    runLine.textContent = `Run #${run.id}, deciding on ${asOfDay}: ${run.status}`;
    showPrefect(run.flow_run_id);
    for (const stage of current.stages) showStage(stage);
    // Why nothing was decided, else what the stages refused (rejected decisions, risk refusals).
    const lines = current.why_no_decision.length
      ? current.why_no_decision
      : current.stages.flatMap((stage) => stage.notes.map((line) => `${stage.stage}: ${line}`));
    why.replaceChildren(...lines.map((line) => h("li", {}, line)));
    why.hidden = lines.length === 0;
    showStatus();
    decisions.render(current, shown.detail, who);
    research.render(run.id, notes);
    pitches.render(run.id, pitched);
    costs.render(spent);
  }

  function showStage(stage) {
    const item = stageItems.get(stage.stage);
    if (!item) return;
    item.dataset.state = stage.state;
    item.querySelector(".stage-state").textContent = stage.state;
    item.querySelector(".stage-outcome").textContent = stage.outcome === "-" ? "" : stage.outcome;
  }

  async function showPrefect(flowRunId) {
    prefect.hidden = !flowRunId;
    if (!flowRunId) return;
    const ui = await prefectUiUrl();
    if (!ui) {
      prefect.replaceChildren(
        `Flow run ${flowRunId}: no Prefect UI to open (it ran on a private Prefect server; `,
        h("code", {}, "aitrader up"), " serves one that keeps every run).",
      );
      return;
    }
    prefect.replaceChildren(
      h("a", { href: `${ui}/runs/flow-run/${encodeURIComponent(flowRunId)}`, target: "_blank", rel: "noopener" },
        "Open the flow run in the Prefect UI"),
      ` (flow run ${flowRunId})`,
    );
  }

  function showStatus() {
    const current = shown && shown.current;
    const run = current && current.run;
    let text = "";
    if (followed && (!run || (followed.council_run_id !== run.id && followed.id !== run.job_id))) {
      text = jobLine(followed); // a job whose run is not there yet (or not read yet)
    } else if (current && current.waiting_for_approval) {
      text = "Waiting for approval: approve or reject each decision below, then send.";
    } else if (current) {
      const live = followed && followed.id === run.job_id ? followed : null;
      const job = live || { status: current.job_status, stage: current.stage, error: null };
      text = job.status ? jobLine({ ...job, id: run.job_id }) : `Run ${run.status}.`;
      if (run.status === "failed" && run.detail) text += ` ${run.detail}`;
    }
    status.textContent = text;
    status.dataset.waiting = current && current.waiting_for_approval ? "true" : "false";
  }

  const badge = document.getElementById("feed-jobs");
  const watcher = new MutationObserver(() => {
    feedNote.hidden = !CUT.has(badge.dataset.state);
  });
  if (badge) watcher.observe(badge, { attributes: true, attributeFilter: ["data-state"] });

  const feed = topicFeed({
    name: "jobs",
    topics: ["job_updates"],
    onLive: () => load(), // on every (re)connect: catch up on what moved while cut
    onMessage: (_, update) => {
      if (COUNCIL_JOBS.has(update.type)) follow(update);
    },
  });
  load();
  return {
    stop() {
      stopped = true;
      watcher.disconnect();
      feed.stop();
      feedNote.hidden = true;
    },
  };
}

function stageOf(current, name) {
  const stage = current.stages.find((s) => s.stage === name);
  return stage ? stage.state : "not reached";
}

function jobLine(job) {
  const stage = job.stage ? ` (${job.stage})` : "";
  const label = job.id ? `Job #${job.id}` : "The run's job";
  if (job.status === "pending") return `${label} pending: its flow run is starting.`;
  if (job.status === "running") return `${label} running${stage}.`;
  if (job.status === "completed") return `${label} completed.`;
  return `${label} ${job.status}${job.error ? `: ${job.error}` : "."}`;
}

function say(element, text, kind) {
  element.textContent = text;
  element.className = kind;
}
