// Jobs: every job with its type, status, stage, times and who asked, kept live by the
// WebSocket topic `job_updates` (the list is read again on each (re)connect, so nothing
// missed while cut stays missing); forms to start a backtest or a sweep, and a training,
// pattern scan or suggestion (trader role); a finished job opened shows its result
// (backtest_result.js, model_job_result.js).
import { api, caller, may } from "./app.js";
import { backtestForm } from "./backtest_form.js";
import { backtestResult } from "./backtest_result.js";
import { h, when } from "./dom.js";
import { topicFeed } from "./feeds.js";
import { modelJobForm } from "./model_job_form.js";
import { MODEL_JOBS, modelJobResult, opensModelJob } from "./model_job_result.js";

const KEEP = 50;
const FINISHED = new Set(["completed", "failed", "canceled"]);

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

  const jobs = new Map(); // id -> job as listed, with `stage` from the feed
  const stages = new Map(); // id -> the last stage the feed said
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
    const name = openable
      ? h("button", {
        type: "button", className: "pick", "aria-label": `Show ${job.type.replaceAll("_", " ")} job ${job.id}'s result`,
        "aria-pressed": String(selected === job.id), onclick: () => select(job.id),
      }, label)
      : label;
    const stage = stages.get(job.id) || job.result?.stage || (FINISHED.has(job.status) ? "" : "—");
    return h(
      "tr",
      { dataset: { id: String(job.id), status: job.status }, "aria-selected": String(selected === job.id) },
      h("th", { scope: "row" }, name),
      h("td", {}, job.type),
      h("td", { className: `job-status job-status-${job.status}` }, job.status,
        job.error ? h("span", { className: "job-error error" }, job.error) : null),
      h("td", { className: "stage" }, stage),
      h("td", {}, when(job.created_at)),
      h("td", {}, when(job.finished_at)),
      h("td", {}, requesters.get(job.id) || "—"),
    );
  }

  async function select(jobId) {
    selected = jobId;
    render();
    if (result) result.stop();
    result = null;
    resultHolder.replaceChildren(h("p", { className: "muted" }, `Loading job #${jobId}'s result…`));
    try {
      const draw = MODEL_JOBS.has(jobs.get(jobId)?.type) ? await readModelJob(jobId) : await readBacktest(jobId);
      if (stopped || selected !== jobId) return;
      result = draw(resultHolder);
      resultHolder.scrollIntoView({ block: "start" });
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
    if (data.stage) stages.set(data.id, data.stage);
    const job = jobs.get(data.id);
    if (!job) {
      reload();
      return;
    }
    jobs.set(data.id, { ...job, status: data.status, error: data.error ?? job.error });
    render();
    if (FINISHED.has(data.status)) reload(); // its finish time and, for a backtest, who asked
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
