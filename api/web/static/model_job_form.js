// The form that starts a model job (POST /api/jobs): a training of the forecaster and/or
// the pattern classifier, a pattern scan over stored bars, suggestions as of a past close,
// or a sentiment run (From empty: score the news and store sentiment as of now; From set: a
// backfill to To, one stored figure every step). Each kind shows only its own few fields;
// what is left empty is left out, so the server's default applies (every stored symbol, the
// whole stored range, the last day, today).
// The server validates: each reason it gives is listed beside the button, the fields it
// names are marked invalid, and nothing is started. Shown to a trader only.
import { api } from "./app.js";
import { h } from "./dom.js";

const KINDS = [
  ["training", "Training"],
  ["pattern_scan", "Pattern scan"],
  ["suggestion", "Suggestion"],
  ["sentiment", "Sentiment"],
];
const MODELS = [["forecaster", "forecaster"], ["pattern_classifier", "pattern classifier"]];
// A field the server names (`body.training.params.window`) -> the label it has here.
const LABELS = {
  models: "Models", symbols: "Symbols", start: "From", end: "To", as_of: "As of",
  window: "Window", horizon: "Horizon", epochs: "Epochs", folds: "Folds", ab: "A/B", classify: "Classify",
  step_hours: "Step",
};

export function modelJobForm(root, { onStarted }) {
  let kind = "training";
  const inputs = {}; // param name -> its control (models: the fieldset)
  const number = (name, value, min, max) =>
    (inputs[name] = h("input", { name, type: "number", value: String(value), min: String(min), max: String(max), step: "1", inputMode: "numeric" }));
  // A field shown for `kinds` only; `hint` under it (a string, or hints of their own kinds).
  const field = (kinds, label, input, hint) =>
    h("label", { dataset: { kinds: kinds.join(" ") } }, label, input,
      typeof hint === "string" ? h("small", { className: "muted" }, hint) : hint);
  const hintFor = (kinds, text) => h("small", { className: "muted", dataset: { kinds: kinds.join(" ") } }, text);
  const check = (kinds, name, label, checked) => {
    inputs[name] = h("input", { name, type: "checkbox", checked });
    return h("label", { className: "check", dataset: { kinds: kinds.join(" ") } }, inputs[name], label);
  };

  const radios = KINDS.map(([value, label]) => {
    const radio = h("input", { type: "radio", name: "model-job-kind", value, checked: value === kind });
    radio.addEventListener("change", () => choose(value));
    return h("label", { className: "check" }, radio, label);
  });
  const modelBoxes = MODELS.map(([value]) => h("input", { type: "checkbox", name: "models", value, checked: true }));
  inputs.models = h(
    "fieldset",
    { className: "models-choice", dataset: { kinds: "training" } },
    h("legend", {}, "Models"),
    modelBoxes.map((box, i) => h("label", { className: "check" }, box, MODELS[i][1])),
  );
  inputs.symbols = h("input", { name: "symbols", autocomplete: "off", placeholder: "AAPL, MSFT" });
  inputs.start = h("input", { name: "start", type: "date" });
  inputs.end = h("input", { name: "end", type: "date" });
  inputs.as_of = h("input", { name: "as_of", type: "date" });
  const horizon = number("horizon", 5, 1, 20);
  inputs.step_hours = h("input", { name: "step_hours", type: "number", value: "24", min: "0.25", max: "168", step: "0.25", inputMode: "decimal" });
  const submit = h("button", { type: "submit" }, "Start training");
  const outcome = h("p", { id: "model-job-outcome", role: "status" });
  const reasons = h("ul", { id: "model-job-reasons", className: "error reasons", hidden: true });

  const form = h(
    "form",
    { id: "model-job-form", "aria-labelledby": "model-job-form-title", noValidate: true, hidden: true },
    h("h3", { id: "model-job-form-title" }, "New model job"),
    h("fieldset", { className: "kinds" }, h("legend", {}, "Job"), radios),
    inputs.models,
    field(["training", "pattern_scan", "suggestion", "sentiment"], "Symbols", inputs.symbols, [
      hintFor(["training", "pattern_scan", "suggestion"], "comma separated; empty: every stored symbol"),
      hintFor(["sentiment"], "comma separated; empty: every symbol with news"),
    ]),
    h("div", { className: "dates", dataset: { kinds: "training pattern_scan sentiment" } },
      // A sentiment hint beside the label, not in it: the field's name stays From / To.
      h("div", {}, field(["training", "pattern_scan", "sentiment"], "From", inputs.start),
        hintFor(["sentiment"], "empty: one live run, as of now")),
      h("div", {}, field(["training", "pattern_scan", "sentiment"], "To", inputs.end),
        hintFor(["sentiment"], "needs From; empty: today"))),
    field(["sentiment"], "Step", inputs.step_hours, "hours between a backfill's stored figures, 0.25-168"),
    field(["suggestion"], "As of", inputs.as_of, "a close; empty: the last stored day"),
    h("div", { className: "numbers" },
      field(["training"], "Window", number("window", 32, 8, 60), "bars in, 8-60"),
      field(["training", "pattern_scan"], "Horizon", horizon, "bars ahead"),
      field(["training"], "Epochs", number("epochs", 10, 1, 200), "1-200"),
      field(["training"], "Folds", number("folds", 3, 1, 10), "walk-forward, 1-10")),
    check(["training"], "ab", "A/B: register as the challenger, scored beside the active version", false),
    check(["pattern_scan"], "classify", "Score each signal with the active classifier", true),
    h("div", { className: "buttons" }, submit),
    outcome,
    reasons,
  );
  root.replaceChildren(form);

  function choose(value) {
    kind = value;
    for (const part of form.querySelectorAll("[data-kinds]")) part.hidden = !part.dataset.kinds.split(" ").includes(kind);
    horizon.max = kind === "training" ? "20" : "60";
    horizon.nextElementSibling.textContent = kind === "training" ? "bars ahead, 1-20" : "bars after a signal, 1-60";
    labelSubmit();
    clearReasons();
  }

  /** The button says what it will do: a sentiment run is live unless From is set. */
  function labelSubmit() {
    submit.textContent = kind !== "sentiment"
      ? `Start ${KINDS.find(([k]) => k === kind)[1].toLowerCase()}`
      : inputs.start.value ? "Backfill sentiment" : "Score news now";
  }

  function params() {
    const out = {};
    const symbols = inputs.symbols.value.split(/[\s,]+/).filter(Boolean).map((s) => s.toUpperCase());
    if (symbols.length) out.symbols = symbols;
    const put = (name) => {
      const value = inputs[name].value.trim();
      if (value === "") return; // the server's default
      out[name] = inputs[name].type === "number" && Number.isFinite(Number(value)) ? Number(value) : value;
    };
    if (kind === "training") {
      out.models = modelBoxes.filter((box) => box.checked).map((box) => box.value);
      ["start", "end", "window", "horizon", "epochs", "folds"].forEach(put);
      out.ab = inputs.ab.checked;
    } else if (kind === "pattern_scan") {
      ["start", "end", "horizon"].forEach(put);
      out.classify = inputs.classify.checked;
    } else if (kind === "sentiment") {
      ["start", "end"].forEach(put); // To without From is sent: the server says why it is refused
      if (out.start) put("step_hours"); // a live run has no steps
    } else {
      put("as_of");
    }
    return out;
  }

  function clearReasons() {
    reasons.replaceChildren();
    reasons.hidden = true;
    for (const input of Object.values(inputs)) {
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-describedby");
    }
  }

  /** The server's reasons, one a line, each named by the field's label here. */
  function showReasons(error) {
    const listed = (error.problem && error.problem.errors) || [];
    if (!listed.length) {
      outcome.textContent = error.message; // one line, as the server put it
      return;
    }
    outcome.textContent = listed.length === 1 ? "Not started:" : `Not started, ${listed.length} reasons:`;
    reasons.replaceChildren(...listed.map(({ field, message }) => {
      const name = field.split(".").reverse().find((part) => part in LABELS);
      const text = message.replace(/^Value error, /, "");
      // A reason about the whole range (`end needs start`) names no field: its first word does.
      const marked = name || [text.split(" ")[0]].find((word) => Object.hasOwn(LABELS, word));
      if (marked && inputs[marked]) {
        inputs[marked].setAttribute("aria-invalid", "true");
        inputs[marked].setAttribute("aria-describedby", reasons.id);
      }
      return h("li", { dataset: { field: name || "" } }, name ? `${LABELS[name]}: ${text}` : text);
    }));
    reasons.hidden = false;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (submit.disabled || !allowed) return;
    submit.disabled = true;
    clearReasons();
    outcome.className = "muted";
    outcome.textContent = "Starting…";
    try {
      const job = await api("/api/jobs", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ type: kind, params: params() }),
      });
      outcome.className = "muted";
      outcome.textContent = `Started ${kind.replace("_", " ")} job #${job.id}.`;
      onStarted(job);
    } catch (error) {
      outcome.className = "error";
      showReasons(error);
    } finally {
      submit.disabled = false;
    }
  });

  inputs.start.addEventListener("input", labelSubmit);
  choose(kind);
  let allowed = false;
  return {
    /** Whether this tab's caller may start one (trader); a viewer sees no form at all. */
    allow(yes) {
      allowed = yes;
      form.hidden = !yes;
    },
  };
}
