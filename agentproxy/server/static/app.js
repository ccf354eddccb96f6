// The pa-server dashboard: the sessions, one session's live timeline, a form that starts a task, a stop button.
// Plain JS, no build step, nothing from a CDN. Every text from the server is set as text, never parsed as HTML.

const TOKEN_KEY = "agentproxy.token";
const WORKDIR_KEY = "agentproxy.workdir";
const LIST_REFRESH_MS = 4000;
const RECONNECT_MAX_MS = 5000;
const FOLD_CHARS = 600; // longer texts start folded
const ERROR_LINE = /\w+(Error|Exception)\b|\bassert|\berror\b|panicked/;
// Terminal escape sequences (CSI, OSC and other string sequences) and control characters but tab and newline.
const ESCAPES = /\x1b\[[0-?]*[ -/]*[@-~]?|\x1b[\]P^_X][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -/]*[0-~]?/g;
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;
const GROUP_TITLES = { result: "The run's result", final: "The whole task, merged" };

// ---------------------------------------------------------------------------------------------
// DOM helpers: elements are built from text nodes only.

function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "testid") element.dataset.testid = value;
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false || child === "") continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

function byTestId(id, root = document) {
  return root.querySelector(`[data-testid="${id}"]`);
}

function mono(text) {
  return h("code", { class: "mono" }, clean(text));
}

function badge(status, testid) {
  return h("span", { class: `badge ${status}`, testid, dataset: { status } }, status);
}

function folded(text, className = "text") {
  const value = clean(text);
  if (value.length <= FOLD_CHARS) return h("div", { class: className }, value);
  return h(
    "details",
    { class: className },
    h("summary", {}, `${value.slice(0, 200).trimEnd()}… (${value.length} chars)`),
    h("div", {}, value),
  );
}

// ---------------------------------------------------------------------------------------------
// Formatting

function clean(text) {
  return String(text ?? "")
    .replace(ESCAPES, "")
    .replace(CONTROLS, "");
}

function money(usd) {
  return `$${Number(usd || 0).toFixed(4)}`;
}

function firstLine(text) {
  const line = clean(text).trim().split("\n", 1)[0];
  return line.length > 120 ? `${line.slice(0, 119)}…` : line;
}

function seconds(value) {
  // Timestamps come as unix seconds; an ISO string is read too.
  if (typeof value === "number") return value;
  const parsed = Date.parse(value);
  return Number.isNaN(parsed) ? null : parsed / 1000;
}

function clock(at) {
  return at ? new Date(at * 1000).toLocaleTimeString([], { hour12: false }) : "";
}

function duration(total) {
  const s = Math.max(0, Math.round(total));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

function ago(at) {
  if (at === null) return "";
  const elapsed = Date.now() / 1000 - at;
  return elapsed < 45 ? "just now" : `${duration(elapsed)} ago`;
}

function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

function errorLine(output) {
  const lines = clean(output)
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean);
  return [...lines].reverse().find((line) => ERROR_LINE.test(line)) ?? lines.at(-1) ?? "";
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });
}

// ---------------------------------------------------------------------------------------------
// Server-sent events, parsed as the HTML standard says: fields per line, a blank line ends a message.

class SseParser {
  constructor(onMessage) {
    this.onMessage = onMessage;
    this.partial = ""; // an unfinished line
    this.skipNewline = false; // the last chunk ended in \r: a \n starting the next belongs to it
    this.lastEventId = "";
    this.reset();
  }

  reset() {
    this.data = [];
    this.type = "";
    this.id = null; // the id field of this message, if it has one
  }

  feed(chunk) {
    let text = chunk;
    if (this.skipNewline && text.startsWith("\n")) text = text.slice(1);
    this.skipNewline = false;
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const char = text[i];
      if (char !== "\n" && char !== "\r") continue;
      this.line(this.partial + text.slice(start, i));
      this.partial = "";
      if (char === "\r") {
        if (i + 1 === text.length) this.skipNewline = true;
        else if (text[i + 1] === "\n") i++;
      }
      start = i + 1;
    }
    this.partial += text.slice(start);
  }

  line(line) {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return; // a comment: keep-alive
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.type = value;
    else if (field === "id" && !value.includes("\0")) this.id = this.lastEventId = value;
  }

  dispatch() {
    if (this.data.length) {
      this.onMessage({ event: this.type || "message", data: this.data.join("\n"), id: this.id });
    }
    this.reset();
  }
}

async function readEventStream(response, onMessage) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser(onMessage);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parser.feed(decoder.decode(value, { stream: true }));
  }
  parser.feed(decoder.decode());
}

// ---------------------------------------------------------------------------------------------
// The HTTP API: a bearer token once the server asked for one (401), kept in localStorage.

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }

  static async from(response) {
    let message = `${response.status} ${response.statusText}`.trim();
    try {
      const body = await response.json();
      message = body.detail || body.error || body.message || message;
      if (typeof message !== "string") message = JSON.stringify(message);
    } catch {
      // not JSON: the status line says enough
    }
    return new ApiError(response.status, message);
  }
}

class Api {
  constructor() {
    this.token = localStorage.getItem(TOKEN_KEY) || "";
    this.asking = null; // one dialog for every request that got a 401 meanwhile
  }

  async fetch(path, options = {}) {
    for (;;) {
      const headers = new Headers(options.headers || {});
      if (this.token) headers.set("Authorization", `Bearer ${this.token}`);
      const sentWith = this.token;
      const response = await fetch(path, { ...options, headers });
      if (response.status !== 401) return response;
      if (this.token === sentWith) await this.askToken(Boolean(sentWith));
    }
  }

  async json(path, options) {
    const response = await this.fetch(path, options);
    if (!response.ok) throw await ApiError.from(response);
    return response.json();
  }

  post(path, body, options = {}) {
    return this.fetch(path, {
      ...options,
      method: "POST",
      headers: { "Content-Type": "application/json", ...(options.headers || {}) },
      body: JSON.stringify(body),
    });
  }

  askToken(refused) {
    this.asking ??= new Promise((resolve) => {
      const dialog = byTestId("token-dialog");
      const input = byTestId("token-input");
      if (refused) byTestId("token-message").textContent = "The server refused this token: enter the right one.";
      input.value = "";
      dialog.addEventListener(
        "close",
        () => {
          this.token = input.value.trim();
          localStorage.setItem(TOKEN_KEY, this.token);
          this.asking = null;
          resolve();
        },
        { once: true },
      );
      dialog.showModal();
    });
    return this.asking;
  }
}

const api = new Api();

// ---------------------------------------------------------------------------------------------
// How each event reads in the timeline (the terminal's view.describe, with more of the detail).

function entry(event, icon, tone, ...content) {
  return h(
    "li",
    { class: tone ? `event is-${tone}` : "event", testid: "timeline-event", dataset: { kind: event.kind } },
    h("time", { class: "at", title: event.at ? new Date(event.at * 1000).toISOString() : null }, clock(event.at)),
    h("span", { class: "icon", "aria-hidden": "true" }, icon),
    h("div", { class: "what" }, content),
  );
}

function toolIcon(tool) {
  if (tool === "Bash") return "$";
  if (/Edit|Write/.test(tool)) return "✎";
  if (/Read|Glob|Grep|LS/.test(tool)) return "⌕";
  if (/Web/.test(tool)) return "⇅";
  return "⚙";
}

function checkKind(result, verdict) {
  if (verdict) return verdict.kind;
  if (result.exit_code === 0 && !result.timed_out) return "passed";
  return result.environment ? "environment" : "failed";
}

const CHECK_MARKS = { passed: "✓", failed: "✗", preexisting: "○", environment: "⚠" };

function checkDetail(result, verdict, kind) {
  if (kind === "passed") return "";
  if (verdict?.kind === "preexisting") return `not held against the agent: ${verdict.summary}`;
  if (verdict?.kind === "environment" || result.environment) {
    return `environment: ${verdict?.summary || result.environment}${verdict?.fix ? ` (fix: ${verdict.fix})` : ""}`;
  }
  const error = errorLine(result.output_tail || "");
  const summary = verdict?.summary || (result.timed_out ? "timed out" : `exited ${result.exit_code}`);
  return error && !summary.includes(error) ? `${summary} | ${error}` : summary;
}

function checkList(results, verdicts = [], cached = []) {
  return h(
    "ul",
    { class: "check-list" },
    results.map((result, index) => {
      const verdict = verdicts[index];
      const kind = checkKind(result, verdict);
      const took = cached.includes(result.command) ? "cached" : `${Number(result.duration_s || 0).toFixed(1)}s`;
      const detail = checkDetail(result, verdict, kind);
      return h(
        "li",
        { class: `check ${kind}`, testid: "check", dataset: { kind } },
        h("span", { class: "mark" }, CHECK_MARKS[kind] || "?"),
        mono(result.command),
        h("span", { class: "muted" }, ` ${took}`),
        kind === "passed" ? null : h("span", { class: `badge ${kind}` }, kind),
        detail ? h("div", { class: "detail" }, detail) : null,
        kind !== "passed" && result.output_tail
          ? h("details", {}, h("summary", {}, "output"), h("pre", {}, clean(result.output_tail)))
          : null,
      );
    }),
  );
}

function questionCard(event) {
  return event.questions.map((question) =>
    h(
      "div",
      { class: "question", dataset: { question: question.question } },
      question.header ? h("div", { class: "muted" }, question.header) : null,
      h("div", { class: "ask" }, `? ${clean(question.question)}`),
      question.options?.length
        ? h(
            "ul",
            { class: "options" },
            question.options.map((option) =>
              h("li", {}, clean(option.label), option.description ? h("span", { class: "muted" }, ` — ${clean(option.description)}`) : null),
            ),
          )
        : null,
      h("div", { class: "answer", testid: "answer", hidden: true }),
    ),
  );
}

function sourceNames(sources) {
  const names = sources.slice(0, 6).map((source) => (source.includes("/") ? source.split("/").at(-1) : source));
  return names.join(", ") + (sources.length > 6 ? ` and ${sources.length - 6} more` : "");
}

const RENDERERS = {
  session_started: (e) =>
    entry(
      e,
      "▶",
      "",
      e.continued ? "Continuing the session in " : "Session started in ",
      mono(e.working_dir),
      e.screenshots?.length ? ` with ${plural(e.screenshots.length, "screenshot")}` : "",
    ),
  context_loaded: (e) =>
    e.sources?.length || e.images
      ? entry(e, "≡", "muted", `Context: ${sourceNames(e.sources || [])} (${e.chars || 0} chars`,
          e.images ? `, ${plural(e.images, "image")})` : ")")
      : null,
  plan_made: (e) =>
    entry(
      e,
      "☰",
      "",
      `Plan by the ${e.brain} brain: ${plural(e.plan.subtasks.length, "subtask")}`,
      e.plan.rationale ? folded(e.plan.rationale, "text muted") : null,
    ),
  subtask_started: (e) =>
    entry(e, "●", "", (e.attempt || 1) > 1 ? `Started again (attempt ${e.attempt}): ` : "Started: ", clean(e.title),
      e.agent ? [" ", badge(e.agent)] : null),
  agent_started: (e) =>
    entry(e, "◆", "muted", `${clean(e.agent || "Agent")} session `, mono(e.agent_session_id), e.model ? ` (${e.model})` : "",
      e.cwd ? [" in ", mono(e.cwd)] : null),
  agent_said: (e) => entry(e, "›", "said", folded(e.text)),
  agent_used_tool: (e, view) =>
    e.tool === "AskUserQuestion" // the question gets its own entry
      ? null
      : entry(e, toolIcon(e.tool), "tool", h("span", { class: "tool-name" }, clean(e.tool)), " ",
          e.detail ? view.shortPaths(e.subtask_id, e.detail) : null),
  tool_decided: (e) => (e.allowed ? null : entry(e, "⛔", "bad", `Denied ${clean(e.tool)}: `, clean(e.reason))),
  agent_retrying: (e) =>
    entry(e, "↺", "warn", `Agent retrying its API call (attempt ${e.attempt}`,
      e.error_status ? `, status ${e.error_status}` : "", ")"),
  agent_paused: (e) =>
    entry(e, "⏸", "warn", `Paused until ${e.until ? clock(e.until) : `in ${duration(e.wait_s)}`}`,
      ` (${duration(e.wait_s)}): `, clean(e.reason)),
  stuck: (e) =>
    entry(e, "⟲", e.action === "refocus" ? "warn" : "bad",
      e.action === "refocus" ? "Stuck: " : "Stuck again: ", mono(e.pattern),
      e.action === "refocus" ? "; interrupted and refocused" : "; failed"),
  question_asked: (e) => entry(e, "?", "question", questionCard(e)),
  question_answered: () => null, // shown under its question, see SessionView.answer
  agent_finished: (e) =>
    e.is_error
      ? entry(e, "✗", "bad", "Agent failed: ", folded(e.result || "no result"))
      : entry(e, "◇", "muted",
          `Agent finished its turn: ${plural(e.num_turns || 0, "model turn")}, `,
          `${e.usage?.input_tokens || 0} tokens in, ${e.usage?.output_tokens || 0} out, `,
          h("span", { class: "cost" }, money(e.usage?.cost_usd))),
  checks_ran: (e) => entry(e, "✔", "checks", "Checks", checkList(e.results, e.verdicts)),
  baseline_ran: (e) =>
    e.results?.length
      ? entry(e, "○", "muted", "Before the change", checkList(e.results, [], e.cached || []))
      : null,
  setup_started: (e) =>
    entry(e, "⚒", "", "Setting up in ", mono(e.cwd), e.reasons?.length ? `: ${clean(e.reasons.join("; "))}` : "",
      e.commands?.length ? h("pre", {}, e.commands.map((command) => `$ ${clean(command)}`).join("\n")) : null,
      (e.problems || []).map((problem) => h("div", { class: "warn-text" }, `⚠ ${clean(problem)}`))),
  setup_step_ran: (e) => {
    const passed = e.result.exit_code === 0 && !e.result.timed_out;
    const ended = e.result.timed_out ? "timed out" : `exited ${e.result.exit_code}`;
    return passed
      ? entry(e, "✓", "muted", `Setup: ${clean(e.why)} (${Number(e.result.duration_s || 0).toFixed(1)}s)`)
      : entry(e, "✗", "bad", `Setup: ${clean(e.why)}: `, mono(e.result.command), ` ${ended}`,
          h("div", { class: "detail" }, errorLine(e.result.output_tail || "")));
  },
  reviewed: (e) =>
    entry(e, e.verdict.passed ? "✓" : "✗", e.verdict.passed ? "good" : "bad",
      h("span", { testid: "verdict", dataset: { passed: String(e.verdict.passed) } },
        `Review: ${e.verdict.passed ? "passed" : "failed"}`),
      (e.attempt || 1) > 1 ? ` (attempt ${e.attempt})` : "",
      e.verdict.findings?.length ? h("ul", { class: "findings" }, e.verdict.findings.map((f) => h("li", {}, clean(f)))) : null),
  follow_up_sent: (e) =>
    entry(e, "↻", "warn", `Follow-up sent to the same agent session (attempt ${e.attempt})`,
      e.instruction ? h("details", {}, h("summary", {}, "instruction"), h("pre", {}, clean(e.instruction))) : null),
  worktree_created: (e) => entry(e, "⎇", "muted", "Worktree ", mono(e.path), " on ", mono(e.branch)),
  worktree_removed: () => null,
  merged: (e) => entry(e, "⤵", "good", "Merged into the run's result at ", mono(String(e.commit).slice(0, 10))),
  merge_conflicted: (e) =>
    entry(e, "⚡", "warn", "Merge conflict in ", e.files.map((file, i) => [i ? ", " : "", mono(file)]),
      ": an agent resolves it"),
  landed: (e) =>
    e.how === "kept"
      ? entry(e, "⚑", "warn", `The verified result is kept on its branch (${clean(e.reason)}); merge it with:`,
          h("pre", {}, clean(e.command)))
      : entry(e, "⚑", "good", "Landed on ", mono(e.branch), ` (${e.how}) at `, mono(String(e.commit).slice(0, 10))),
  subtask_finished: (e) =>
    entry(e, { done: "✓", blocked: "⊘", discarded: "○" }[e.status] || "✗",
      { done: "good", discarded: "muted" }[e.status] || "bad", badge(e.status), e.reason ? [" ", clean(e.reason)] : null),
  best_of_chosen: (e) =>
    entry(e, "★", e.passed ? "good" : "warn",
      `Best of ${e.attempts.length}: `, mono(e.chosen), e.passed ? " lands (" : " goes on alone (", clean(e.reason), ")",
      h("ul", {}, e.attempts.map((a) => h("li", {}, mono(a.attempt_id), ` ${clean(a.agent)}: `,
        a.passed ? "passed" : `failed (${a.failing} checks)`,
        a.diff_lines != null ? `, ${a.diff_lines} lines` : "", `, $${Number(a.cost_usd).toFixed(4)}`)))),
  actor_restarted: (e) =>
    entry(e, "⚠", "warn", `${clean(e.actor)} crashed (${clean(e.reason)}); restarted (#${e.restarts})`),
  notice: (e) =>
    entry(e, e.level === "error" ? "✗" : e.level === "warning" ? "⚠" : "ℹ",
      { error: "bad", warning: "warn" }[e.level] || "muted", folded(e.text)),
  committed: (e) => entry(e, "●", "good", "Committed ", mono(String(e.commit).slice(0, 10)), ": ", clean(e.message)),
  brain_called: (e) =>
    entry(e, "✦", e.ok ? "muted" : "bad", `Supervisor brain (${e.purpose}, ${clean(e.model)}): `,
      e.ok ? `${e.input_tokens || 0} tokens in, ${e.output_tokens || 0} out, ` : `failed: ${clean(e.error)}, `,
      h("span", { class: "cost" }, money(e.cost_usd)), ` in ${Number(e.duration_s || 0).toFixed(1)}s`),
  brain_fell_back: (e) => entry(e, "⚠", "warn", `Brain: ${clean(e.reason)}; the offline brain's ${e.purpose} is used`),
  worker_joined: (e) =>
    entry(e, "⇄", "muted", "Worker ", mono(e.worker), ` joined: ${plural(e.slots, "slot")}`,
      Object.keys(e.capabilities || {}).length
        ? ` (${Object.entries(e.capabilities).map(([cli, version]) => `${cli} ${version}`).join(", ")})`
        : ""),
  worker_left: (e) => entry(e, "⇄", "warn", "Worker ", mono(e.worker), ` left: ${clean(e.reason)}`),
  subtask_assigned: (e) =>
    entry(e, "⇄", "muted", "On worker ", mono(e.worker), ` (epoch ${e.epoch}`,
      e.bundle_bytes ? `, base sent: ${e.bundle_bytes.toLocaleString()} bytes)` : ", base already there)"),
  session_finished: (e) =>
    entry(e, "■", { done: "good", failed: "bad" }[e.status] || "warn", badge(e.status), e.reason ? [" ", clean(e.reason)] : "",
      ` · ${duration(e.duration_s || 0)}, agents ${money(e.cost_usd)}, supervisor brain ${money(e.brain_cost_usd)}`),
};

function renderEvent(event, view) {
  const render = RENDERERS[event.kind];
  if (render) return render(event, view);
  // A kind this page does not know yet: its name and its fields, as text.
  const { kind, at, session_id: _session, ...fields } = event;
  return entry(event, "·", "muted", clean(kind), h("details", {}, h("summary", {}, "fields"),
    h("pre", {}, JSON.stringify(fields, null, 2))));
}

// ---------------------------------------------------------------------------------------------
// One session on screen: its header, its plan, its timeline; fed by its event stream.

const FINAL_STATES = new Set(["pending", "done", "failed", "blocked"]);
const PLAN_STATES = {
  baseline_ran: "running",
  agent_started: "running",
  follow_up_sent: "running",
  agent_said: "running",
  agent_used_tool: "running",
  checks_ran: "reviewing",
  reviewed: "reviewing",
};

class SessionView {
  constructor(id) {
    this.id = id; // null until a new task's stream names its session
    this.controller = new AbortController();
    this.lastId = 0;
    this.status = id ? "" : "starting";
    this.finished = false; // the stream said `done`
    this.startedAt = null;
    this.endedAt = null;
    this.agentCost = 0;
    this.brainCost = 0;
    this.finalCost = null;
    this.groups = new Map();
    this.rows = new Map();
    this.agentDirs = new Map(); // subtask id -> its agent's working directory
    this.root = document.querySelector(".session");
    this.timeline = byTestId("timeline");
    this.planBody = byTestId("plan-subtasks");
    this.clear();
  }

  clear() {
    byTestId("placeholder").hidden = true;
    this.root.hidden = false;
    this.timeline.replaceChildren();
    this.planBody.replaceChildren();
    byTestId("plan").hidden = true;
    byTestId("outcome").hidden = true;
    byTestId("outcome").replaceChildren();
    byTestId("session-id").textContent = this.id || "…";
    byTestId("session-task").textContent = "";
    byTestId("session-dir").textContent = "";
    document.querySelector(".full-task").hidden = true;
    this.setStatus(this.status);
    this.showCost();
    this.setStreamState("");
  }

  get signal() {
    return this.controller.signal;
  }

  close() {
    this.controller.abort();
  }

  // -- the header

  showSummary(summary) {
    if (summary.task) this.showTask(summary.task);
    if (summary.working_dir) byTestId("session-dir").textContent = clean(summary.working_dir);
    if (this.startedAt === null) this.startedAt = seconds(summary.created_at);
    if (!summary.status) return;
    if (!this.finished) this.setStatus(summary.status);
    const ended = summary.status !== "running";
    if (ended && this.endedAt === null) this.endedAt = seconds(summary.updated_at);
    if (ended && this.finalCost === null && summary.cost_usd !== undefined) {
      this.finalCost = summary.cost_usd;
    }
    this.showCost();
    this.tick();
  }

  showTask(task) {
    byTestId("session-task").textContent = firstLine(task);
    const full = clean(task).trim();
    const details = document.querySelector(".full-task");
    details.hidden = full === firstLine(task);
    byTestId("session-task-full").textContent = full;
  }

  setStatus(status) {
    const changed = status !== this.shownStatus;
    this.status = this.shownStatus = status;
    const element = byTestId("session-status");
    element.textContent = status || "…";
    element.className = `badge ${status}`;
    element.dataset.status = status;
    if (!changed) return; // a "Stopping…" button stays so until the status changes
    const stop = byTestId("stop-button");
    stop.hidden = status !== "running";
    stop.disabled = false;
    stop.textContent = "Stop";
  }

  showCost() {
    const cost = this.finalCost ?? this.agentCost + this.brainCost;
    byTestId("session-cost").textContent =
      money(cost) + (this.brainCost ? ` (supervisor brain ${money(this.brainCost)})` : "");
  }

  setStreamState(text) {
    byTestId("stream-state").textContent = text;
  }

  tick() {
    const now = Date.now() / 1000;
    if (this.startedAt !== null) {
      byTestId("session-elapsed").textContent = duration((this.endedAt ?? now) - this.startedAt);
    }
    for (const row of this.rows.values()) {
      if (row.startedAt !== null && (row.endedAt !== null || !this.finished)) {
        row.elapsed.textContent = duration((row.endedAt ?? now) - row.startedAt);
      }
    }
  }

  // -- the stream

  async follow(first = null) {
    let response = first;
    let failures = 0;
    while (!this.signal.aborted && !this.finished) {
      try {
        response ??= await this.openStream();
        if (!response.ok) throw await ApiError.from(response);
        this.setStreamState(this.status === "running" ? "live" : "");
        await readEventStream(response, (message) => {
          failures = 0;
          try {
            this.receive(message);
          } catch (error) {
            reportError(error); // one event this page cannot show must not cost the stream
          }
        });
      } catch (error) {
        if (this.signal.aborted) return;
        if (error instanceof ApiError && error.status < 500) return this.streamFailed(error.message);
      }
      response = null;
      if (this.finished || this.signal.aborted) return;
      if (this.id === null) return this.streamFailed("the stream ended before it named its session");
      failures += 1;
      this.setStreamState("reconnecting…");
      await sleep(Math.min(RECONNECT_MAX_MS, 250 * 2 ** failures), this.signal);
    }
  }

  openStream() {
    const headers = { Accept: "text/event-stream" };
    if (this.lastId) headers["Last-Event-ID"] = String(this.lastId);
    return api.fetch(`/session/${encodeURIComponent(this.id)}/events`, { headers, signal: this.signal });
  }

  streamFailed(message) {
    this.setStreamState("");
    this.timeline.append(
      h("li", { class: "event is-bad", testid: "stream-error" }, h("span", { class: "icon" }, "✗"), h("div", { class: "what" }, message)),
    );
  }

  receive(message) {
    let data;
    try {
      data = JSON.parse(message.data);
    } catch {
      return; // not JSON: nothing this page can show
    }
    if (message.event === "session") return this.named(data.session_id);
    if (message.event === "done") return this.done(data);
    const number = Number(message.id);
    if (message.id !== null && Number.isFinite(number)) {
      if (number <= this.lastId) return; // seen before the stream reconnected
      this.lastId = number;
    }
    this.addEvent(data.kind ? data : { ...data, kind: message.event });
  }

  named(sessionId) {
    if (!sessionId || this.id === sessionId) return;
    this.id = sessionId;
    byTestId("session-id").textContent = sessionId;
    history.replaceState(null, "", `#/session/${encodeURIComponent(sessionId)}`);
    if (this.status === "starting") this.setStatus("running");
    this.setStreamState("live");
    app.sessionNamed(this);
  }

  done(outcome) {
    this.finished = true;
    this.setStreamState("");
    if (outcome.status) this.setStatus(outcome.status);
    if (outcome.cost_usd !== undefined) this.finalCost = outcome.cost_usd;
    this.showCost();
    this.showOutcome(outcome);
    this.tick();
    app.sessionEnded(this);
  }

  // -- events

  addEvent(event) {
    const stick = this.status === "running" && this.nearBottom(); // follow a live run, not a replay
    this.track(event);
    const node = renderEvent(event, this);
    if (node) this.place(event, node);
    if (event.kind === "question_answered") this.answer(event);
    if (stick) window.scrollTo(0, document.documentElement.scrollHeight);
  }

  nearBottom() {
    const { scrollHeight, scrollTop, clientHeight } = document.documentElement;
    return scrollHeight - scrollTop - clientHeight < 120;
  }

  shortPaths(subtaskId, detail) {
    // Paths inside the agent's directory read relative to it; the full text stays in the tooltip.
    const cwd = this.agentDirs.get(subtaskId);
    const text = clean(detail);
    const short = cwd ? text.replaceAll(`${cwd}/`, "") : text;
    return h("code", { class: "mono", title: short === text ? null : text }, short);
  }

  place(event, node) {
    if (event.subtask_id) this.group(event.subtask_id).events.append(node);
    else this.timeline.append(node);
  }

  track(event) {
    if (this.startedAt === null && event.at) this.startedAt = event.at;
    switch (event.kind) {
      case "session_started":
        this.showTask(event.task);
        byTestId("session-dir").textContent = clean(event.working_dir);
        if (!this.status || this.status === "starting") this.setStatus("running");
        break;
      case "plan_made":
        this.showPlan(event);
        break;
      case "agent_started":
        if (event.cwd) this.agentDirs.set(event.subtask_id, clean(event.cwd));
        break;
      case "agent_finished":
        this.agentCost += event.usage?.cost_usd || 0;
        break;
      case "brain_called":
        this.brainCost += event.cost_usd || 0;
        break;
      case "session_finished":
        this.endedAt = event.at || null;
        this.finalCost = (event.cost_usd || 0) + (event.brain_cost_usd || 0);
        this.setStatus(event.status);
        this.settle(event.status);
        break;
    }
    if (event.subtask_id) this.trackSubtask(event);
    this.showCost();
  }

  trackSubtask(event) {
    const id = event.subtask_id;
    if (event.kind === "subtask_started") {
      const row = this.row(id, event.title);
      row.title.textContent = clean(event.title);
      row.startedAt ??= event.at || null;
      row.endedAt = null;
      this.setRowState(row, "preparing");
      const group = this.group(id);
      group.title.textContent = clean(event.title);
      this.setGroupState(group, "running");
      return;
    }
    const row = this.rows.get(id);
    const group = this.groups.get(id);
    if (event.kind === "agent_finished" && row) {
      row.cost += event.usage?.cost_usd || 0;
      row.costCell.textContent = money(row.cost);
      row.turns += 1;
      row.turnsCell.textContent = String(row.turns);
    }
    if (event.kind === "agent_finished" && group) {
      group.cost += event.usage?.cost_usd || 0;
      group.costLabel.textContent = money(group.cost);
    }
    if (event.kind === "subtask_finished" && group) this.setGroupState(group, event.status);
    if (!row) return;
    if (event.kind === "agent_said") row.action.textContent = firstLine(event.text);
    if (event.kind === "agent_used_tool") row.action.textContent = `${clean(event.tool)} ${clean(event.detail)}`.trim();
    if (event.kind === "subtask_finished") {
      row.endedAt = event.at || null;
      this.setRowState(row, event.status);
      if (event.reason) row.action.textContent = firstLine(event.reason);
    } else if (PLAN_STATES[event.kind]) {
      this.setRowState(row, PLAN_STATES[event.kind]);
    }
  }

  settle(status) {
    // What was still under way when the session ended ended with it (stopped, out of budget, failed).
    if (status === "done") return;
    for (const row of this.rows.values()) {
      if (!FINAL_STATES.has(row.element.dataset.state)) this.setRowState(row, status);
    }
    for (const group of this.groups.values()) {
      if (group.element.dataset.state === "running") this.setGroupState(group, status);
    }
  }

  showPlan(event) {
    byTestId("plan").hidden = false;
    byTestId("plan-brain").textContent = `by the ${event.brain} brain`;
    for (const subtask of event.plan.subtasks) {
      const row = this.row(subtask.id, subtask.title);
      const notes = [
        ...(subtask.depends_on?.length ? [`after ${subtask.depends_on.join(", ")}`] : []),
        ...(subtask.checks || []).map((check) => `check: ${check}`),
      ];
      row.notes.textContent = notes.length ? clean(notes.join("; ")) : "";
    }
  }

  row(id, title) {
    if (this.rows.has(id)) return this.rows.get(id);
    byTestId("plan").hidden = false;
    const row = {
      title: h("span", {}, clean(title)),
      notes: h("div", { class: "muted small mono" }),
      state: badge("pending"),
      action: h("td", { class: "action mono" }),
      turnsCell: h("td", { class: "num" }, "0"),
      turns: 0,
      elapsed: h("td", { class: "num" }),
      costCell: h("td", { class: "num" }, money(0)),
      cost: 0,
      startedAt: null,
      endedAt: null,
    };
    row.element = h(
      "tr",
      { testid: "plan-subtask", dataset: { subtaskId: id, state: "pending" } },
      h("td", { class: "mono" }, clean(id)),
      h("td", {}, row.title, row.notes),
      h("td", {}, row.state),
      row.action,
      row.turnsCell,
      row.elapsed,
      row.costCell,
    );
    this.rows.set(id, row);
    this.planBody.append(row.element);
    return row;
  }

  setRowState(row, state) {
    row.element.dataset.state = state;
    row.state.textContent = state;
    row.state.className = `badge ${state}`;
    row.state.dataset.status = state;
  }

  group(id) {
    if (this.groups.has(id)) return this.groups.get(id);
    const planned = this.rows.get(id);
    const group = {
      title: h("span", { class: "group-title" }, planned ? planned.title.textContent : GROUP_TITLES[id] || ""),
      state: h("span", { class: "badge", hidden: true }),
      costLabel: h("span", { class: "cost muted" }),
      events: h("ol", { class: "group-events" }),
      cost: 0,
    };
    group.element = h(
      "li",
      { class: "group", testid: "subtask-group", dataset: { subtaskId: id, state: "" } },
      h("div", { class: "group-head" }, h("span", { class: "sid mono" }, clean(id)), group.title, group.state, group.costLabel),
      group.events,
    );
    this.groups.set(id, group);
    this.timeline.append(group.element);
    return group;
  }

  setGroupState(group, state) {
    group.element.dataset.state = state;
    group.state.textContent = state;
    group.state.className = `badge ${state}`;
    group.state.hidden = false;
  }

  answer(event) {
    const questions = [...this.group(event.subtask_id).events.querySelectorAll(".question")].reverse(); // latest first
    for (const [question, answer] of Object.entries(event.answers || {})) {
      const card = questions.find((q) => q.dataset.question === question && q.querySelector(".answer").hidden);
      const line = [`↳ ${clean(answer)}`, h("span", { class: "muted" }, ` (answered by ${clean(event.by)})`)];
      if (card) {
        const target = card.querySelector(".answer");
        target.hidden = false;
        append(target, line);
      } else {
        this.place(event, entry(event, "↳", "question", h("div", { class: "answer", testid: "answer" }, line)));
      }
    }
  }

  showOutcome(outcome) {
    const box = byTestId("outcome");
    box.hidden = false;
    box.className = `outcome ${outcome.status}`;
    box.replaceChildren();
    append(box, [
      h("div", { class: "outcome-head" }, badge(outcome.status || "ended"), " ",
        h("span", { testid: "outcome-cost" }, `total ${money(this.finalCost ?? this.agentCost + this.brainCost)}`)),
      outcome.reason ? h("div", {}, clean(outcome.reason)) : null,
      outcome.commit ? h("div", {}, "commit ", mono(outcome.commit)) : null,
    ]);
  }
}

// ---------------------------------------------------------------------------------------------
// The page: the session list, the selected session, the form.

const app = {
  view: null,
  sessions: [],
  refreshing: null,

  start() {
    document.querySelector(".new-task").addEventListener("submit", (event) => {
      event.preventDefault();
      this.startTask();
    });
    byTestId("task-input").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        byTestId("new-task-form").requestSubmit();
      }
    });
    byTestId("workdir-input").value = localStorage.getItem(WORKDIR_KEY) || "";
    byTestId("stop-button").addEventListener("click", () => this.stop());
    byTestId("refresh-button").addEventListener("click", () => this.refresh());
    byTestId("token-dialog").addEventListener("cancel", (event) => event.preventDefault()); // nothing works without it
    window.addEventListener("hashchange", () => this.route());
    setInterval(() => this.refresh(), LIST_REFRESH_MS);
    setInterval(() => this.view?.tick(), 1000);
    this.refresh();
    this.route();
  },

  route() {
    const match = location.hash.match(/^#\/session\/(.+)$/);
    if (match) this.select(decodeURIComponent(match[1]));
  },

  select(id) {
    if (this.view?.id === id) return;
    this.view?.close();
    const view = (this.view = new SessionView(id));
    this.markSelected();
    const known = this.sessions.find((session) => session.id === id);
    if (known) view.showSummary(known);
    api
      .json(`/session/${encodeURIComponent(id)}`, { signal: view.signal })
      .then((summary) => view.showSummary(summary))
      .catch((error) => {
        if (!view.signal.aborted) view.setStreamState(error.message);
      });
    view.follow();
  },

  async startTask() {
    const task = byTestId("task-input").value.trim();
    const workingDir = byTestId("workdir-input").value.trim();
    if (!task || !workingDir) return;
    localStorage.setItem(WORKDIR_KEY, workingDir);
    this.showFormError("");
    byTestId("start-button").disabled = true;
    this.view?.close();
    const view = (this.view = new SessionView(null));
    view.showTask(task);
    byTestId("session-dir").textContent = workingDir;
    this.markSelected();
    try {
      const response = await api.post("/task", { task, working_dir: workingDir }, {
        headers: { Accept: "text/event-stream" },
        signal: view.signal,
      });
      if (!response.ok) throw await ApiError.from(response);
      await view.follow(response);
    } catch (error) {
      if (!view.signal.aborted) {
        this.showFormError(error.message);
        view.streamFailed(error.message);
        view.setStatus("");
      }
    } finally {
      byTestId("start-button").disabled = false;
    }
  },

  sessionNamed(view) {
    if (view !== this.view) return;
    byTestId("task-input").value = "";
    byTestId("start-button").disabled = false;
    this.refresh();
  },

  sessionEnded(view) {
    if (view === this.view) this.refresh();
  },

  async stop() {
    const view = this.view;
    if (!view?.id) return;
    const button = byTestId("stop-button");
    button.disabled = true;
    button.textContent = "Stopping…";
    try {
      const answer = await api.json("/stop", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ session_id: view.id }),
      });
      if (!answer.stopped) view.setStreamState("the session was not running");
    } catch (error) {
      view.setStreamState(`stop failed: ${error.message}`);
      button.disabled = false;
      button.textContent = "Stop";
    }
    this.refresh();
  },

  showFormError(message) {
    const element = byTestId("form-error");
    element.textContent = message;
    element.hidden = !message;
  },

  refresh() {
    this.refreshing ??= Promise.all([this.refreshSessions(), this.refreshHealth()]).finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  },

  async refreshHealth() {
    const element = byTestId("health");
    try {
      const health = await api.json("/health");
      element.textContent = `${health.status} · ${health.active_sessions} running`;
      element.className = "health ok";
    } catch {
      element.textContent = "server unreachable";
      element.className = "health down";
    }
  },

  async refreshSessions() {
    try {
      const { sessions } = await api.json("/sessions");
      this.sessions = sessions;
    } catch {
      return; // the health line says the server is unreachable
    }
    this.renderSessions();
    const current = this.sessions.find((session) => session.id === this.view?.id);
    if (current && !this.view.finished) this.view.showSummary(current);
    const workdir = byTestId("workdir-input");
    if (!workdir.value && this.sessions.length) workdir.value = this.sessions[0].working_dir;
  },

  renderSessions() {
    const list = byTestId("session-list");
    list.replaceChildren(
      ...this.sessions.map((session) =>
        h(
          "li",
          { testid: "session-item", dataset: { sessionId: session.id, status: session.status } },
          h(
            "a",
            {
              href: `#/session/${encodeURIComponent(session.id)}`,
              title: clean(session.task),
              onclick: () => this.select(session.id), // also when the address already names it
            },
            h("div", { class: "item-head" }, badge(session.status, "session-item-status"),
              h("span", { class: "item-task", testid: "session-item-task" }, firstLine(session.task))),
            h("div", { class: "item-dir mono", testid: "session-item-dir" },
              h("bdi", { dir: "ltr" }, clean(session.working_dir))),
            h("div", { class: "item-foot muted" },
              h("span", { testid: "session-item-cost" }, money(session.cost_usd)),
              h("span", {}, ago(seconds(session.updated_at ?? session.created_at)))),
          ),
        ),
      ),
    );
    byTestId("session-list-empty").hidden = this.sessions.length > 0;
    this.markSelected();
  },

  markSelected() {
    for (const item of document.querySelectorAll('[data-testid="session-item"]')) {
      item.classList.toggle("selected", item.dataset.sessionId === this.view?.id);
    }
  },
};

app.start();
