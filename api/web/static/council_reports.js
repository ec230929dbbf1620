// What a council run wrote before its decisions, and what it cost: the analysts' research
// notes (/api/research/current), the PMs' pitches with their anonymous peer reviews
// (/api/pitches/current), and the spend by stage and by model (/api/council/{id}/costs).
// Each panel shows only the shown run's rows: the "current" research and pitches are the
// newest run's that has any, which for a run just started is the week before's.
import { h, money } from "./dom.js";

export function researchPanel() {
  const panel = section("council-research", "Research");
  function render(runId, answer) {
    if (panel.same(runId, answer)) return; // keep open notes open
    const reports = rowsOf(panel, runId, answer, "reports", "No research yet.");
    if (!reports) return;
    const analysts = new Set(reports.map((r) => r.analyst));
    panel.head.textContent = `Research: ${reports.length} notes by ${analysts.size} analyst${analysts.size === 1 ? "" : "s"}`;
    const symbols = new Map();
    for (const report of reports) {
      if (!symbols.has(report.symbol)) symbols.set(report.symbol, []);
      symbols.get(report.symbol).push(report);
    }
    const sorted = [...symbols.entries()].sort(([a], [b]) => a.localeCompare(b));
    panel.fill(
      ["Symbol", "Stance by analyst (confidence)", "Notes"],
      sorted.map(([symbol, notes]) =>
        h("tr", { dataset: { symbol } },
          h("th", { scope: "row" }, symbol),
          h("td", {}, notes.map((r) => stance(r))),
          h("td", { className: "notes" },
            h("details", {},
              h("summary", {}, `${notes.length} note${notes.length === 1 ? "" : "s"}`),
              h("ul", { className: "reviews" }, notes.map((r) => h("li", { dataset: { report: r.id } },
                h("strong", {}, r.analyst), `: ${r.summary}`))))))),
    );
  }
  return { element: panel.element, render };
}

export function pitchesPanel() {
  const panel = section("council-pitches", "Pitches and peer review");
  function render(runId, answer) {
    if (panel.same(runId, answer)) return; // keep open reviews open
    const pitches = rowsOf(panel, runId, answer, "pitches", "No pitch yet.");
    if (!pitches) return;
    const ranked = pitches.map((p) => ({ ...p, meanRank: meanRank(p.reviews) })).sort(byReview);
    const kept = ranked.filter((p) => !p.dropped_reason).length;
    panel.head.textContent = `Pitches and peer review: ${pitches.length} pitches, ${kept} kept for review`;
    panel.fill(
      ["#", "Symbol", "Side", "PM", "Conviction", "Entry", "Target", "Stop", "Review score", "Ranks given", "Decision", "Thesis and reviews"],
      ranked.map((p, i) =>
        h("tr", { dataset: { pitch: p.id, symbol: p.symbol } },
          h("td", { className: "num" }, p.dropped_reason ? "" : String(i + 1)),
          h("th", { scope: "row" }, p.symbol),
          h("td", { className: `side-${p.side}` }, p.side),
          h("td", {}, p.pm),
          h("td", { className: "num" }, money(p.conviction)),
          h("td", { className: "num" }, money(p.entry_price)),
          h("td", { className: "num" }, money(p.take_profit)),
          h("td", { className: "num" }, money(p.stop_loss)),
          h("td", { className: "num" }, p.mean_score == null ? "" : money(p.mean_score)),
          h("td", { className: "num", title: "Each reviewer's rank of this pitch (1 = best)" },
            p.reviews.filter((r) => r.position != null).map((r) => r.position + 1).join(", ")),
          h("td", {}, p.dropped_reason ? h("span", { className: "muted" }, `dropped: ${p.dropped_reason}`)
            : p.decision ? `${p.decision.action} (${p.decision.status})` : "none"),
          h("td", { className: "council-why" }, reviews(p))),
      ),
    );
  }
  return { element: panel.element, render };
}

export function costsPanel() {
  const panel = section("council-costs", "Cost");
  const byModel = h("div", { className: "table-scroll" });
  panel.element.append(h("h4", {}, "By member and model"), byModel);
  function render(answer) {
    if (!answer || answer.error) {
      panel.note(answer ? answer.error : "No cost yet.", answer ? "error" : "muted");
      byModel.replaceChildren();
      return;
    }
    const budget = answer.budget_usd == null ? "no budget" : `budget $${dollars(answer.budget_usd)}`;
    panel.head.textContent = `Cost: $${dollars(answer.cost_usd)} (${budget}), ${count(answer.prompt_tokens)} prompt and ${count(answer.completion_tokens)} completion tokens`;
    panel.fill(
      ["Stage", "Calls", "Cache hits", "Prompt tokens", "Completion tokens", "Largest prompt", "Cost ($)"],
      answer.stages.map((s) =>
        h("tr", { dataset: { stage: s.stage } },
          h("th", { scope: "row" }, s.stage),
          ...[s.calls, s.cache_hits, s.prompt_tokens, s.completion_tokens, s.max_prompt_tokens].map((n) => h("td", { className: "num" }, count(n))),
          h("td", { className: "num" }, dollars(s.cost_usd)))),
    );
    byModel.replaceChildren(
      table("council-costs-models", ["Stage", "Member", "Model", "Calls", "Cache hits", "Tokens", "Cost ($)"],
        answer.lines.map((l) =>
          h("tr", { dataset: { stage: l.stage, model: l.model } },
            h("td", {}, l.stage),
            h("th", { scope: "row" }, l.member),
            h("td", {}, l.model),
            h("td", { className: "num" }, count(l.calls)),
            h("td", { className: "num" }, count(l.cache_hits)),
            h("td", { className: "num" }, count(l.prompt_tokens + l.completion_tokens)),
            h("td", { className: "num" }, dollars(l.cost_usd))))),
    );
  }
  return { element: panel.element, render };
}

/** A section with a heading, a note and one table, refilled on each render. */
function section(id, title) {
  const head = h("h3", { id: `${id}-title` }, title);
  const noteLine = h("p", { className: "muted" }, "Not reached yet.");
  const holder = h("div", { className: "table-scroll" });
  const element = h("section", { id, className: "council-part", "aria-labelledby": `${id}-title` }, head, noteLine, holder);
  let shown = "";
  return {
    element,
    head,
    /** Whether this answer is the one shown already (then nothing is redrawn). */
    same(...answer) {
      const key = JSON.stringify(answer);
      if (key === shown) return true;
      shown = key;
      return false;
    },
    note(text, kind) {
      noteLine.textContent = text;
      noteLine.className = kind;
      noteLine.hidden = !text;
      holder.replaceChildren();
      head.textContent = title;
    },
    fill(columns, rows) {
      noteLine.hidden = true;
      holder.replaceChildren(table(`${id}-table`, columns, rows));
    },
  };
}

/** The rows under `key` of `answer` if it is the run shown; else says why there are none. */
function rowsOf(panel, runId, answer, key, none) {
  if (answer && answer.error) panel.note(answer.error, "error");
  else if (!answer || answer.run_id !== runId || answer[key].length === 0) panel.note(none, "muted");
  else return answer[key];
  return null;
}

function table(id, columns, rows) {
  return h("table", { id },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows));
}

function stance(report) {
  const findings = report.findings || {};
  const confidence = findings.confidence == null ? "" : ` ${money(findings.confidence)}`;
  return h("span", { className: `stance stance-${findings.stance || "none"}`, title: report.analyst },
    `${findings.stance || "?"}${confidence} (${report.analyst.replace(/^analyst-/, "")})`);
}

function reviews(pitch) {
  const count = pitch.reviews.length;
  return h("details", {},
    h("summary", {}, `${count} review${count === 1 ? "" : "s"}`),
    h("p", {}, pitch.thesis),
    h("ul", { className: "reviews" },
      pitch.reviews.map((r) =>
        h("li", {},
          h("strong", {}, r.reviewer),
          ` saw it as ${r.label || "?"}, ranked ${r.position == null ? "-" : r.position + 1}, score ${money(r.score)}: `,
          r.critique))));
}

function meanRank(reviews) {
  const ranks = reviews.filter((r) => r.position != null).map((r) => r.position + 1);
  return ranks.length ? ranks.reduce((a, b) => a + b, 0) / ranks.length : Infinity;
}

function byReview(a, b) {
  const dropped = Number(Boolean(a.dropped_reason)) - Number(Boolean(b.dropped_reason));
  const score = Number(b.mean_score ?? -1) - Number(a.mean_score ?? -1);
  return dropped || score || a.meanRank - b.meanRank || a.id - b.id;
}

function dollars(value) {
  return money(value, 4);
}

function count(value) {
  return Number(value).toLocaleString("en-US");
}
