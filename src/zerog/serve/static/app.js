// zerog dashboard: plain JavaScript, no build step, no dependencies.
// Everything shown comes from the API and is untrusted (model output, command output):
// it is only ever put into the page as text (textContent), never as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "zerog-token";
  const FINISHED_BAD = ["max_iterations", "max_input_tokens", "max_output_tokens", "max_cost",
    "max_time", "stuck", "model_error", "failed_to_start", "cannot_run"];
  const main = document.getElementById("main");
  const conn = document.getElementById("conn");

  // ------------------------------------------------------------------ helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "href") node.setAttribute("href", value);
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(clean(String(child))));
    }
    return node;
  }

  // Control characters (other than newline and tab) never reach the page.
  function clean(text) {
    return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, "\ufffd");
  }

  function cut(text, n) {
    const s = String(text || "");
    return s.length > n ? s.slice(0, n - 1) + "…" : s;
  }

  function num(n) { return Number(n || 0).toLocaleString("en-US"); }
  function money(n) { return "$" + Number(n || 0).toFixed(4); }
  function secs(n) { return Number(n || 0).toFixed(1) + " s"; }
  function when(ts) { return ts ? new Date(ts * 1000).toLocaleString() : ""; }

  function badge(status) {
    let kind = status;
    if (FINISHED_BAD.includes(status)) kind = "bad";
    return el("span", { class: "badge " + kind, "data-status": status }, status);
  }

  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

  function headers(extra) {
    const h = Object.assign({ Accept: "application/json" }, extra || {});
    if (token()) h.Authorization = "Bearer " + token();
    return h;
  }

  class ApiError extends Error {
    constructor(status, message, details) { super(message); this.status = status; this.details = details || []; }
  }

  async function api(path, options) {
    const response = await fetch(path, Object.assign({}, options, { headers: headers(options && options.headers) }));
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      throw new ApiError(response.status, (body && body.error) || ("HTTP " + response.status), body && body.details);
    }
    return body;
  }

  function showError(err) {
    if (err instanceof ApiError && err.status === 401) return askToken();
    main.replaceChildren(el("div", { class: "card" }, el("p", { class: "bad" }, "Error: " + err.message)));
  }

  function askToken() {
    const input = el("input", { type: "password", placeholder: "bearer token", autocomplete: "off" });
    const form = el("form", { class: "token" }, "This server needs its token (open the URL zerog serve printed, or paste the token from its token file): ", input, el("button", { type: "submit" }, "Use it"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      route();
    });
    main.replaceChildren(el("div", { class: "card" }, form));
  }

  // A token may arrive in the fragment (#token=...), which is never sent to the server.
  function tokenFromFragment() {
    const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (match) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
  }

  // ------------------------------------------------------------------ runs list

  let timer = null;

  const TEMPLATE = {
    text: "Make the failing tests pass",
    workspace: "my-project",
    checks: [{ kind: "command", command: "python3 -m pytest -q" }],
    budget: { max_iterations: 5, max_cost: 0.5, max_seconds: 900 },
    model: "local",
  };

  // A goal as JSON, the same body as POST /api/runs (docs/serve.md).
  function submitForm() {
    const area = el("textarea", { id: "goal-json", rows: 12, spellcheck: false });
    area.value = sessionStorage.getItem("zerog-draft") || JSON.stringify(TEMPLATE, null, 2);
    const message = el("div", { class: "bad", id: "submit-error" });
    const form = el("form", { class: "submit" }, area,
      el("div", {}, el("button", { type: "submit" }, "Submit"), " ", message));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      message.textContent = "";
      let body;
      try { body = JSON.parse(area.value); } catch (e) { message.textContent = "not JSON: " + e.message; return; }
      sessionStorage.setItem("zerog-draft", area.value);
      try {
        const run = await api("/api/runs", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
        history.pushState(null, "", "/runs/" + encodeURIComponent(run.id));
        route();
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) return askToken();
        message.textContent = err.message + (err.details && err.details.length ? ": " + err.details.join("; ") : "");
      }
    });
    return el("details", { class: "card", id: "new-run" }, el("summary", {}, "New run"), form);
  }

  async function showRuns() {
    document.title = "zerog · runs";
    const list = el("div", { id: "runs" });
    main.replaceChildren(submitForm(), list);
    const render = async () => {
      const data = await api("/api/runs?limit=100");
      const rows = data.runs.map((r) => el("tr", { "data-run": r.id },
        el("td", {}, el("a", { href: "/runs/" + encodeURIComponent(r.id) }, r.id)),
        el("td", {}, badge(r.status)),
        el("td", { class: "goal", title: cut(r.goal, 2000) }, cut(r.goal, 140)),
        el("td", { class: "num" }, String(r.iterations)),
        el("td", { class: "num" }, num(r.input_tokens) + " / " + num(r.output_tokens)),
        el("td", { class: "num" }, money(r.cost)),
        el("td", { class: "num" }, secs(r.duration)),
        el("td", { class: "num" }, when(r.created))));
      const table = el("table", { class: "runs" },
        el("thead", {}, el("tr", {}, el("th", {}, "run"), el("th", {}, "status"), el("th", {}, "goal"),
          el("th", { class: "num" }, "iter"), el("th", { class: "num" }, "tokens in / out"),
          el("th", { class: "num" }, "cost"), el("th", { class: "num" }, "time"), el("th", { class: "num" }, "started"))),
        el("tbody", {}, ...rows));
      list.replaceChildren(rows.length ? table : el("p", { class: "muted" }, "No runs yet. Submit one above, or with POST /api/runs (docs/serve.md)."));
      conn.textContent = "updated " + new Date().toLocaleTimeString();
    };
    await render();
    timer = setInterval(() => render().catch(showError), 2000);
  }

  // ------------------------------------------------------------------ one run

  function newIteration(n) {
    return { n, steps: [], stepState: [], stepChecks: {}, actions: {}, checks: [], verdict: null,
      rollback: null, feedback: null, preflight: null, calls: [], input: 0, output: 0, cost: 0,
      validating: false };
  }

  // Folds the event stream into what the page shows.
  function RunModel() {
    this.iterations = [];
    this.notes = [];
    this.started = null;
    this.finished = null;
    this.lastSeq = 0;
    this.current = null;
  }

  RunModel.prototype.iter = function (n) {
    let it = this.iterations.find((x) => x.n === n);
    if (!it) { it = newIteration(n); this.iterations.push(it); this.iterations.sort((a, b) => a.n - b.n); }
    return it;
  };

  RunModel.prototype.add = function (e) {
    if (e.seq <= this.lastSeq) return;
    this.lastSeq = e.seq;
    const d = e.data || {};
    const n = typeof d.iteration === "number" ? d.iteration : (this.current ? this.current.n : 0);
    switch (e.kind) {
      case "run_started": this.started = d; break;
      case "iteration_started": this.current = this.iter(d.iteration); break;
      case "model_call": {
        const it = this.current || this.iter(1);
        it.calls.push(d); it.input += d.input_tokens || 0; it.output += d.output_tokens || 0; it.cost += d.cost || 0;
        break;
      }
      case "plan": {
        const it = this.iter(n); it.steps = d.steps || []; it.stepState = it.steps.map(() => "pending"); break;
      }
      case "step_started": this.iter(n).stepState[d.step] = "running"; break;
      case "step_done": this.iter(n).stepState[d.step] = "done"; break;
      case "step_failed": this.iter(n).stepState[d.step] = "failed"; break;
      case "action": {
        const it = this.iter(n); (it.actions[d.step] = it.actions[d.step] || []).push({ action: d.action, obs: null });
        break;
      }
      case "observation": {
        const list = this.iter(n).actions[d.step] || [];
        if (list.length) list[list.length - 1].obs = d;
        break;
      }
      case "step_check": this.iter(n).stepChecks[d.step] = d; break;
      case "validation_started": this.iter(n).validating = true; break;
      case "check": this.iter(n).checks.push(d); break;
      case "verdict": this.iter(n).verdict = d; this.iter(n).validating = false; break;
      case "rollback":
        if (d.final) this.notes.push({ kind: "rollback", text: "workspace rolled back to its starting state (" + d.written + " restored, " + d.removed + " removed)" });
        else this.iter(n).rollback = d;
        break;
      case "feedback": this.iter(n).feedback = d; break;
      case "preflight": this.iter(0).preflight = d; break;
      case "resumed": this.notes.push({ kind: "resumed", text: "resumed at " + d.at }); break;
      case "action_retried": this.notes.push({ kind: "retried", text: "interrupted action " + (d.index + 1) + " of step " + (d.step + 1) + " rolled back and retried" }); break;
      case "run_finished": this.finished = d; break;
      default: break;
    }
  };

  function describeAction(a) {
    if (!a) return "?";
    if (a.kind === "shell") return "$ " + a.command;
    if (a.kind === "write_file") return "write " + a.path + " (" + (a.content || "").length + " chars)";
    if (a.kind === "edit") return "edit " + a.path;
    return a.kind;
  }

  function outputBlocks(obs) {
    const blocks = [];
    if (obs && obs.stdout) blocks.push(el("pre", { class: "out" }, cut(obs.stdout, 20000)));
    if (obs && obs.stderr) blocks.push(el("pre", { class: "out err" }, cut(obs.stderr, 20000)));
    return blocks;
  }

  function obsLine(obs) {
    if (!obs) return el("span", { class: "muted" }, " running…");
    const ok = obs.status === "success";
    return el("span", { class: ok ? "ok" : "bad" },
      " " + (ok ? "✓" : "✗ " + obs.status + (obs.exit_code !== null && obs.exit_code !== undefined ? " (exit " + obs.exit_code + ")" : "")) +
      " · " + Math.round((obs.duration || 0) * 1000) + " ms" + (obs.truncated ? " · output truncated" : ""));
  }

  const STATE_MARK = { pending: "○", running: "◐", done: "✓", failed: "✗" };

  function renderIteration(it) {
    const passed = it.verdict && it.verdict.passed;
    const failed = (it.verdict && !it.verdict.passed) || it.rollback;
    // Iteration 0 is the preflight: the checks on the untouched workspace, no model call.
    const box = el("section", { class: "iteration" + (passed ? " passed" : failed ? " failed" : ""), "data-iteration": String(it.n) },
      it.n === 0 ? el("h2", {}, "Preflight", el("span", { class: "spend" }, "the checks before any model call"))
        : el("h2", {}, "Iteration " + it.n,
          el("span", { class: "spend" }, num(it.input) + " in / " + num(it.output) + " out tokens · " + money(it.cost) + " · " + it.calls.length + " model calls")));
    const plan = el("ol", { class: "plan" });
    it.steps.forEach((step, i) => {
      const state = it.stepState[i] || "pending";
      const li = el("li", { "data-step-state": state },
        el("span", { class: "state " + state, title: state }, STATE_MARK[state] || "?"), " ", step.intent || "");
      for (const entry of it.actions[i] || []) {
        li.append(el("div", { class: "act" }, el("span", { class: "what" }, cut(describeAction(entry.action), 400)), obsLine(entry.obs), ...outputBlocks(entry.obs)));
      }
      const sc = it.stepChecks[i];
      if (sc) {
        li.append(el("div", { class: "check" }, el("span", { class: sc.passed ? "ok" : "bad" }, (sc.passed ? "✓" : "✗") + " step check "),
          el("span", { class: "what" }, cut(sc.command, 400)), ...(sc.passed ? [] : outputBlocks(sc.observation))));
      }
      plan.append(li);
    });
    if (it.steps.length) box.append(el("div", { class: "muted" }, "plan: " + it.steps.length + " step" + (it.steps.length === 1 ? "" : "s")), plan);
    if (it.validating) box.append(el("div", { class: "muted" }, "validating…"));
    for (const c of it.checks) {
      const mark = c.passed ? (c.flaky ? "✓ (flaky: passed on a re-run)" : "✓") : "✗";
      const row = el("div", { class: "check", "data-check": c.passed ? "passed" : "failed" },
        el("span", { class: c.passed ? (c.flaky ? "warn" : "ok") : "bad" }, mark + " check "), el("span", { class: "what" }, cut(c.name, 400)));
      if (!c.passed) {
        for (const t of c.failed_tests || []) row.append(el("div", { class: "bad" }, "  " + cut(t.name + ": " + (t.message || t.outcome), 400)));
        row.append(...outputBlocks(c.observation));
      }
      box.append(row);
    }
    if (it.rollback) {
      const what = it.n === 0 ? "↺ what the checks wrote was rolled back (" : "↺ backtrack: workspace rolled back (";
      box.append(el("div", { class: "note rollback" }, what + it.rollback.written + " restored, " + it.rollback.removed + " removed)"));
    }
    if (it.preflight) box.append(...renderPreflight(it.preflight));
    if (it.feedback && it.feedback.text) {
      box.append(el("div", { class: "note" }, el("div", { class: "muted" }, "feedback to the next plan" + (it.feedback.no_progress ? " (no progress: " + it.feedback.no_progress + ")" : "")),
        el("pre", { class: "out" }, cut(it.feedback.text, 8000))));
    }
    return box;
  }

  function renderPreflight(p) {
    if (p.outcome === "passed") return [el("div", { class: "note ok", "data-preflight": "passed" }, "nothing to do: the checks already pass")];
    if (p.outcome === "failed") {
      return [el("div", { class: "note", "data-preflight": "failed" }, el("div", { class: "muted" }, "feedback to the first plan"),
        el("pre", { class: "out" }, cut(p.feedback || "", 8000)))];
    }
    return (p.cannot_run || []).map((r) => el("div", { class: "note bad", "data-preflight": "cannot_run" },
      el("div", {}, "✗ cannot run at all: ", el("span", { class: "what" }, cut(r.check, 400))),
      el("pre", { class: "out err" }, cut(r.cause, 2000)),
      el("div", {}, "fix: " + cut(r.fix, 2000))));
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = clean(String(text));
    return node;
  }

  // Tokens (bars: input, output) and cost (line) per iteration, inline SVG.
  function chart(model) {
    const its = model.iterations.filter((it) => it.n > 0);  // the preflight asks no model
    const box = el("div", { class: "card chart", id: "chart" },
      el("div", { class: "legend" }, "per iteration: ", el("b", { class: "in" }, "■ input tokens"), " ", el("b", { class: "out" }, "■ output tokens"), " ", el("b", { class: "cost" }, "● cost")));
    if (!its.length) { box.append(el("div", { class: "muted" }, "no iterations yet")); return box; }
    const W = 600, H = 160, left = 52, right = 52, top = 10, bottom = 24;
    const maxTok = Math.max(1, ...its.map((i) => Math.max(i.input, i.output)));
    const maxCost = Math.max(...its.map((i) => i.cost));
    const slot = (W - left - right) / its.length;
    const bar = Math.max(2, Math.min(28, slot / 3));
    const y = (v) => top + (H - top - bottom) * (1 - v / maxTok);
    const yc = (v) => top + (H - top - bottom) * (1 - (maxCost > 0 ? v / maxCost : 0));
    const root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "tokens and cost per iteration" });
    root.append(svg("line", { x1: left, y1: H - bottom, x2: W - right, y2: H - bottom, stroke: "#999" }));
    root.append(svg("text", { x: left - 4, y: top + 8, "text-anchor": "end", "font-size": 10, fill: "#555" }, num(maxTok)));
    root.append(svg("text", { x: left - 4, y: H - bottom, "text-anchor": "end", "font-size": 10, fill: "#555" }, "0"));
    root.append(svg("text", { x: W - right + 4, y: top + 8, "font-size": 10, fill: "#c07000" }, money(maxCost)));
    let path = "";
    its.forEach((it, k) => {
      const x0 = left + slot * k + slot / 2;
      root.append(svg("rect", { x: x0 - bar, y: y(it.input), width: bar, height: H - bottom - y(it.input), fill: "#0b5cad" },));
      root.append(svg("rect", { x: x0, y: y(it.output), width: bar, height: H - bottom - y(it.output), fill: "#7a3fb0" }));
      root.lastChild.append(svg("title", {}, "iteration " + it.n + ": " + num(it.input) + " in, " + num(it.output) + " out, " + money(it.cost)));
      root.append(svg("text", { x: x0, y: H - 8, "text-anchor": "middle", "font-size": 10, fill: "#555" }, String(it.n)));
      path += (k ? " L " : "M ") + x0 + " " + yc(it.cost);
      root.append(svg("circle", { cx: x0, cy: yc(it.cost), r: 3, fill: "#c07000" }));
    });
    if (its.length > 1) root.append(svg("path", { d: path, fill: "none", stroke: "#c07000", "stroke-width": 1.5 }));
    box.append(root);
    return box;
  }

  function summaryCard(run, onCancel, onResume) {
    const facts = el("div", { class: "facts" },
      el("div", {}, el("span", {}, "status"), badge(run.status)),
      el("div", {}, el("span", {}, "iterations"), String(run.iterations)),
      el("div", {}, el("span", {}, "tokens"), num(run.input_tokens) + " in / " + num(run.output_tokens) + " out"),
      el("div", {}, el("span", {}, "cost"), money(run.cost)),
      el("div", {}, el("span", {}, "time"), secs(run.duration)),
      el("div", {}, el("span", {}, "model"), cut(run.model, 80)),
      el("div", {}, el("span", {}, "workspace"), cut(run.workspace, 120)));
    const cancel = el("button", { type: "button", id: "cancel", disabled: !run.active }, "Cancel");
    const resume = el("button", { type: "button", id: "resume", disabled: run.status !== "unfinished" }, "Resume");
    cancel.addEventListener("click", onCancel);
    resume.addEventListener("click", onResume);
    return el("div", { class: "card summary" },
      el("h1", {}, cut(run.goal, 400)), facts,
      run.reason ? el("div", { class: "muted", id: "reason" }, cut(run.reason, 600)) : null,
      el("div", { class: "actions" }, cancel, resume, el("a", { href: "/" }, "all runs")));
  }

  // What the run changed in its workspace (GET /api/runs/{id}/diff): loaded once the run
  // has finished, or on request while it runs. Paths and lines arrive with control
  // characters escaped, and are put into the page as text only.
  function lineClass(line) {
    if (line.startsWith("@@")) return "hunk";
    if (line.startsWith("+")) return "add";
    if (line.startsWith("-")) return "del";
    return "ctx";
  }

  function changesCard(state, load) {
    const box = el("div", { class: "card", id: "changes" }, el("h2", {}, "Changes"));
    if (state.error) { box.append(el("p", { class: "bad" }, state.error)); return box; }
    if (!state.diff) {
      const button = el("button", { type: "button", id: "load-changes", disabled: state.loading },
        state.loading ? "Loading…" : "Show the changes so far");
      button.addEventListener("click", load);
      box.append(button);
      return box;
    }
    const diff = state.diff;
    if (diff.note) box.append(el("p", { class: "muted" }, diff.note));
    if (!diff.files.length) box.append(el("p", { class: "muted", id: "no-changes" }, "No file changed."));
    const added = diff.files.reduce((n, f) => n + f.added, 0), removed = diff.files.reduce((n, f) => n + f.removed, 0);
    if (diff.files.length) box.append(el("p", { class: "muted" }, diff.files.length + " file" + (diff.files.length === 1 ? "" : "s") + " · +" + added + " −" + removed));
    for (const f of diff.files) {
      const file = el("div", { class: "file", "data-path": f.path, "data-status": f.status },
        el("div", { class: "file-head" }, el("span", { class: "badge " + f.status }, f.status), " ",
          el("span", { class: "what" }, f.path), el("span", { class: "muted" }, f.note ? " · " + f.note : " · +" + f.added + " −" + f.removed)));
      if (f.lines.length) {
        const pre = el("pre", { class: "diff" });
        for (const line of f.lines) pre.append(el("span", { class: lineClass(line) }, line || " "));
        file.append(pre);
      }
      box.append(file);
    }
    return box;
  }

  function gitLine(git) {
    if (!git) return null;
    const text = git.status === "committed"
      ? "git: committed " + String(git.commit || "").slice(0, 12) + " on new branch " + git.branch + " (" + git.user_branch + " unchanged)"
      : "git: " + git.status + ": " + git.message;
    return el("div", { class: git.status === "failed" ? "bad" : "muted", id: "git" }, cut(text, 600));
  }

  // Server-sent events read with fetch (so the bearer token can be sent).
  async function follow(runId, after, onEvent, onEnd, signal) {
    const response = await fetch("/api/runs/" + encodeURIComponent(runId) + "/events?after=" + after,
      { headers: headers({ Accept: "text/event-stream" }), signal });
    if (!response.ok || !response.body) throw new ApiError(response.status, "stream: HTTP " + response.status);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return false;
      buffer += decoder.decode(value, { stream: true });
      let at;
      while ((at = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, at);
        buffer = buffer.slice(at + 2);
        let kind = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) kind = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        if (!data) continue;
        const parsed = JSON.parse(data);
        if (kind === "end") { onEnd(parsed); return true; }
        onEvent(parsed);
      }
    }
  }

  async function showRun(runId) {
    document.title = "zerog · " + runId;
    const model = new RunModel();
    const detail = await api("/api/runs/" + encodeURIComponent(runId));
    let run = detail.run;
    detail.events.forEach((e) => model.add(e));
    const controller = new AbortController();
    let pending = false;
    const changes = { diff: null, loading: false, error: null, settled: false };

    const render = () => {
      pending = false;
      const notes = model.notes.map((n) => el("div", { class: "note " + n.kind }, n.text));
      const final = model.finished
        ? el("div", { class: "card final", id: "final", "data-status": model.finished.status },
          (model.finished.status === "success" ? "✓ " : "✗ ") + model.finished.status + ": " + cut(model.finished.reason, 600),
          gitLine(model.finished.git))
        : null;
      if (model.finished && !changes.settled && !changes.loading) { changes.settled = true; loadChanges(); }
      main.replaceChildren(
        summaryCard(run, cancel, resume),
        chart(model),
        el("div", { class: "card", id: "timeline" }, ...model.iterations.map(renderIteration), ...notes,
          model.iterations.length ? null : el("div", { class: "muted" }, run.active ? "waiting for the first plan…" : "no events")),
        final,
        model.started ? changesCard(changes, loadChanges) : null);
    };
    const later = () => { if (!pending) { pending = true; requestAnimationFrame(render); } };
    const refresh = async () => { run = (await api("/api/runs/" + encodeURIComponent(runId) + "?after=" + model.lastSeq)).run; later(); };

    async function loadChanges() {
      changes.loading = true;
      later();
      try { changes.diff = await api("/api/runs/" + encodeURIComponent(runId) + "/diff"); changes.error = null; }
      catch (err) {
        if (err instanceof ApiError && err.status === 401) return askToken();
        changes.error = "Changes: " + err.message;
      }
      changes.loading = false;
      later();
    }
    async function cancel() {
      try { run = await api("/api/runs/" + encodeURIComponent(runId) + "/cancel", { method: "POST" }); later(); }
      catch (err) { showError(err); }
    }
    async function resume() {
      try { run = await api("/api/runs/" + encodeURIComponent(runId) + "/resume", { method: "POST" }); later(); live(); }
      catch (err) { showError(err); }
    }
    async function live() {
      conn.textContent = "live";
      try {
        let ended = false;
        while (!ended && !controller.signal.aborted) {
          ended = await follow(runId, model.lastSeq, (e) => {
            model.add(e);
            if (e.kind === "model_call" || e.kind === "iteration_started" || e.kind === "run_finished") refresh().catch(() => {});
            later();
          }, () => { refresh().catch(() => {}); }, controller.signal);
        }
        conn.textContent = "run ended";
      } catch (err) {
        if (!controller.signal.aborted) conn.textContent = "disconnected: " + err.message;
      }
    }
    render();
    if (run.active) live();
    window.addEventListener("popstate", () => controller.abort(), { once: true });
  }

  // ------------------------------------------------------------------ routing

  window.addEventListener("popstate", () => route());

  function route() {
    if (timer) { clearInterval(timer); timer = null; }
    const match = /^\/runs\/([A-Za-z0-9_-]{1,64})$/.exec(location.pathname);
    const page = match ? showRun(match[1]) : showRuns();
    page.catch(showError);
  }

  tokenFromFragment();
  route();
})();
