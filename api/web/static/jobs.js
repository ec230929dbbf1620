// Jobs: every job with its type, status, stage, times and who asked, kept live by the
// WebSocket topic `job_updates` (the list is read again on each (re)connect, so nothing
// missed while cut stays missing); forms to start a backtest or a sweep, and a training,
// pattern scan, suggestion or sentiment run (trader role); a finished job opened shows its
// result (backtest_result.js, model_job_result.js), a running model job its progress.
// A job whose flow reports `done` of `total` (any type) shows a bar in its stage cell, moved
// by the feed: a message with those facts moves it at once (the bus carries them); one
// without them (the embedded poller names the move, not its facts) reads the job again.
import { api, caller, may } from "./app.js";
import { backtestForm } from "./backtest_form.js";
import { backtestResult } from "./backtest_result.js";
import { h, when } from "./dom.js";
import { topicFeed } from "./feeds.js";
import { modelJobForm } from "./model_job_form.js";
import { FINISHED, jobProgress, MODEL_JOBS, modelJobResult, opensModelJob } from "./model_job_result.js";

const KEEP = 50;
const PROGRESS = ["done", "total", "scored", "stored"]; // facts a job_updates message may carry

export function jobsView(root) {
  const body = h("tbody");
  const empty = h("p", { id: "jobs-empty", className: "muted" }, "Loading jobs…");
  const note = h("p", { id: "jobs-note", className: "muted", role: "status" });
  const backtestHolder = h("div");
  const modelHolder = h("div");
  const resultHolder = h("div", { id: "job-result", className: "jobs-result" });
  root.replaceChildren(
    h(
      "section",
      { className: "jobs-layout", "aria-labelledby": "jobs-title" },
      h(
        "div",
        { className: "jobs-list" },
        h("div", { className: "section-head" }, h("h2", { id: "jobs-title" }, "Jobs"), note),
        h(
          "div",
          { className: "table-scroll" },
          h(
            "table",
            { id: "jobs" },
            h("caption", { className: "visually-hidden" }, "Jobs, newest first"),
            h("thead", {}, h("tr", {}, ["Job", "Type", "Status", "Stage", "Requested", "Finished", "By"].map(
              (name) => h("th", { scope: "col" }, name),
            ))),
            body,
          ),
        ),
        empty,
      ),
      h("div", { className: "jobs-form" }, backtestHolder, modelHolder),
      resultHolder,
    ),
  );

  const jobs = new Map(); // id -> job as listed, its result's stage and progress kept by the feed
  const reading = new Map(); // job id -> a read of it in flight (true: read once more after)
  const requesters = new Map(); // job id -> who asked (known for backtests)
  let selected = null; // the job id whose result is shown
  let result = null;
  let stopped = false;
  let reloading = null;
  let again = false;

  async function reload() {
    if (reloading) {
      again = true; // asked while reading: read once more after, to miss nothing
      return reloading;
    }
    reloading = (async () => {
      try {
        const [page, runs] = await Promise.all([
          api(`/api/jobs?limit=${KEEP}`),
          api(`/api/backtests?limit=${KEEP}`),
        ]);
        for (const run of runs.items) if (run.job_id) requesters.set(run.job_id, run.requested_by);
        jobs.clear();
        for (const job of page.items) jobs.set(job.id, job);
        note.textContent = "";
        note.className = "muted";
        render();
      } catch (error) {
        note.textContent = `Jobs unavailable: ${error.message}`;
        note.className = "error";
      } finally {
        reloading = null;
        if (again && !stopped) {
          again = false;
          reload();
        }
      }
    })();
    return reloading;
  }

  function render() {
    if (stopped) return;
    const rows = [...jobs.values()].sort((a, b) => b.id - a.id).slice(0, KEEP);
    body.replaceChildren(...rows.map(jobRow));
    empty.textContent = "No job yet.";
    empty.hidden = rows.length > 0;
  }

  function jobRow(job) {
    const openable = (job.type === "backtest" && job.status === "completed") || opensModelJob(job);
    const label = `#${job.id}`;
    const shows = FINISHED.has(job.status) ? "result" : "progress";
    const name = openable
      ? h("button", {
        type: "button", className: "pick", "aria-label": `Show ${job.type.replaceAll("_", " ")} job ${job.id}'s ${shows}`,
        "aria-pressed": String(selected === job.id), onclick: () => select(job.id),
      }, label)
      : label;
    const stage = job.result?.stage || (FINISHED.has(job.status) ? "" : "—");
    return h(
      "tr",
      { dataset: { id: String(job.id), status: job.status }, "aria-selected": String(selected === job.id) },
      h("th", { scope: "row" }, name),
      h("td", {}, job.type),
      h("td", { className: `job-status job-status-${job.status}` }, job.status,
        job.error ? h("span", { className: "job-error error" }, job.error) : null),
      h("td", { className: "stage" }, stage, jobProgress(job)),
      h("td", {}, when(job.created_at)),
      h("td", {}, when(job.finished_at)),
      h("td", {}, requesters.get(job.id) || "—"),
    );
  }

  /** Show job `jobId` under the list; `scroll` there when the reader asked for it. */
  async function select(jobId, scroll = true) {
    selected = jobId;
    render();
    if (result) result.stop();
    result = null;
    resultHolder.replaceChildren(h("p", { className: "muted" }, `Loading job #${jobId}'s result…`));
    try {
      const draw = MODEL_JOBS.has(jobs.get(jobId)?.type) ? await readModelJob(jobId) : await readBacktest(jobId);
      if (stopped || selected !== jobId) return;
      result = draw(resultHolder);
      if (scroll) resultHolder.scrollIntoView({ block: "start" });
    } catch (error) {
      resultHolder.replaceChildren(h("p", { className: "error", role: "alert" }, `Result unavailable: ${error.message}`));
    }
  }

  async function readBacktest(jobId) {
    const runs = await api(`/api/backtests?job=${jobId}&limit=1`);
    if (!runs.items.length) throw new Error(`job ${jobId} stored no backtest`);
    const run = await api(`/api/backtests/${runs.items[0].id}`);
    return (root) => backtestResult(root, run);
  }

  async function readModelJob(jobId) {
    const job = await api(`/api/jobs/${jobId}`);
    return (root) => modelJobResult(root, job);
  }

  /** A `job_updates` message: the row moves at once; a job not listed yet is read in. */
  function update(data) {
    const job = jobs.get(data.id);
    if (!job) {
      reload();
      return;
    }
    const facts = Object.fromEntries(PROGRESS.filter((key) => Number.isFinite(data[key])).map((key) => [key, data[key]]));
    const stage = data.stage || job.result?.stage;
    const moved = { ...job, status: data.status, error: data.error ?? job.error, result: { ...job.result, ...facts, stage } };
    jobs.set(data.id, moved);
    render();
    followSelected(moved);
    if (FINISHED.has(data.status)) reload(); // its finish time and, for a backtest, who asked
    else if (!Object.keys(facts).length) readJob(data.id); // a move named without its facts
  }

  /** Read one running job again (its result's progress); a read asked for meanwhile follows. */
  async function readJob(jobId) {
    if (reading.has(jobId)) {
      reading.set(jobId, true);
      return;
    }
    reading.set(jobId, false);
    try {
      const fresh = await api(`/api/jobs/${jobId}`);
      const known = jobs.get(jobId);
      // Not over a later word: an end the list has read, or more steps a message brought.
      if (stopped || !known || FINISHED.has(known.status)) return;
      if (known.result?.stage === fresh.result?.stage && (fresh.result?.done ?? -1) < (known.result?.done ?? -1)) return;
      jobs.set(jobId, fresh);
      render();
      followSelected(fresh);
    } catch (error) {
      note.textContent = `Job #${jobId} unavailable: ${error.message}`;
      note.className = "error";
    } finally {
      const again = reading.get(jobId);
      reading.delete(jobId);
      if (again && !stopped) readJob(jobId);
    }
  }

  /** The opened job moved: drawn again from the list's copy while it runs, read once it ends. */
  function followSelected(job) {
    if (selected !== job.id || stopped || !MODEL_JOBS.has(job.type)) return;
    if (FINISHED.has(job.status)) {
      select(job.id, false);
      return;
    }
    if (result) result.stop();
    result = modelJobResult(resultHolder, job);
  }

  const feed = topicFeed({
    name: "jobs",
    topics: ["job_updates"],
    onMessage: (_, data) => update(data),
    onLive: () => reload(), // what happened while the feed was cut
  });
  const onStarted = (job) => {
    jobs.set(job.id, job);
    render();
  };
  const forms = [backtestForm(backtestHolder, { onStarted }), modelJobForm(modelHolder, { onStarted })];
  caller().then((who) => forms.forEach((form) => form.allow(may(who, "trader"))));
  reload();

  return {
    stop() {
      stopped = true;
      feed.stop();
      if (result) result.stop();
    },
  };
}
