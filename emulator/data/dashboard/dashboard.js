// The emulator's dashboard: polls /_emulator/ui/feed with an incremental cursor and renders
// tasks and requests. Every value from the server is user input (prompts, bodies, keys): the
// DOM is built with createElement/textContent only, never from HTML strings.
"use strict";

const params = new URLSearchParams(location.search);
const POLL_MS = Math.min(60000, Math.max(100, Number(params.get("poll")) || 1000));
const MAX_ROWS = 200;

const state = {
  since: null, // journal seq of the newest request seen (null: ask for a snapshot)
  first: "", // oldest journal seq seen, to notice a reset
  key: params.get("key") || "",
  tasks: new Map(), // id -> {row, data}
  requests: new Map(), // seq -> row
  timer: null,
  inflight: false,
  generation: 0, // bumped to drop answers to polls sent before a filter change or a reset
  clockMode: null,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function excerpt(text, n) {
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}

function hms(isoTime) {
  return isoTime ? isoTime.slice(11, 19) : "";
}

// -- feed -------------------------------------------------------------------------------

async function tick() {
  state.timer = null;
  if (document.hidden || state.inflight) return schedule();
  state.inflight = true;
  const generation = state.generation;
  try {
    const query = new URLSearchParams();
    if (state.since !== null) {
      query.set("since", state.since);
      query.set("first", state.first);
    }
    if (state.key) query.set("key", state.key);
    const watch = [];
    for (const [id, task] of state.tasks) if (!task.data.terminal) watch.push(id);
    if (watch.length) query.set("watch", watch.slice(-200).join(","));
    const response = await fetch("/_emulator/ui/feed?" + query, { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    const feed = await response.json();
    if (generation === state.generation) apply(feed);
    setLive(true);
  } catch (error) {
    setLive(false, error);
  } finally {
    state.inflight = false;
    schedule();
  }
}

function schedule(delay) {
  if (state.timer !== null) clearTimeout(state.timer);
  state.timer = setTimeout(tick, delay === undefined ? POLL_MS : delay);
}

function refresh(snapshot) {
  if (snapshot) {
    state.generation += 1;
    state.since = null;
  }
  schedule(0);
}

function setLive(ok, error) {
  const live = $("live");
  live.textContent = ok ? "live" : "offline";
  live.className = "live " + (ok ? "ok" : "down");
  live.title = ok ? "Updating every " + POLL_MS + " ms" : "Feed failed: " + error;
}

function apply(feed) {
  if (feed.full) {
    state.tasks.clear();
    state.requests.clear();
    $("tasks").tBodies[0].replaceChildren();
    $("requests").tBodies[0].replaceChildren();
  }
  state.since = feed.seq;
  state.first = feed.first === null ? "" : String(feed.first);
  for (const entry of feed.requests) addRequest(entry);
  // tasks arrive oldest first in increments, newest first in snapshots
  const tasks = feed.full ? feed.tasks.slice().reverse() : feed.tasks;
  for (const task of tasks) upsertTask(task);
  for (const id of feed.gone) removeTask(id);
  trim(state.tasks, $("tasks").tBodies[0], (t) => t.row);
  trim(state.requests, $("requests").tBodies[0], (r) => r);
  $("scenario-name").textContent = feed.scenario;
  $("clock-now").textContent = feed.clock.now.replace("T", " ").replace("Z", " UTC");
  $("clock-mode").textContent = "(" + feed.clock.mode + ")";
  if (state.clockMode !== feed.clock.mode) {
    state.clockMode = feed.clock.mode;
    $("advance-button").disabled = feed.clock.mode !== "virtual";
    $("advance-button").title =
      feed.clock.mode === "virtual" ? "" : "The clock is real: start with --clock virtual";
  }
  $("task-count").textContent = "(" + state.tasks.size + " shown, " + feed.counts.tasks + " kept)";
  $("request-count").textContent = "(" + state.requests.size + " shown)";
  $("tasks-empty").hidden = state.tasks.size > 0;
  $("requests-empty").hidden = state.requests.size > 0;
  const selector = $("scenario-select");
  if (selector.dataset.current !== feed.scenario && document.activeElement !== selector) {
    selector.dataset.current = feed.scenario;
    if ([...selector.options].some((o) => o.value === feed.scenario)) selector.value = feed.scenario;
  }
}

function trim(map, body, rowOf) {
  while (map.size > MAX_ROWS) {
    const [oldest, value] = map.entries().next().value;
    rowOf(value).remove();
    map.delete(oldest);
  }
}

// -- tasks ------------------------------------------------------------------------------

function upsertTask(task) {
  const known = state.tasks.get(task.id);
  const row = taskRow(task);
  if (known) {
    // a finished task comes back whenever the app polls it or downloads its files: keep its
    // players (and thumbnails) as they are, so that a video being watched is not restarted
    if (task.files.length && task.files.join() === known.data.files.join()) {
      row.querySelector("td.output").replaceWith(known.row.querySelector("td.output"));
    }
    known.row.replaceWith(row);
    known.row = row;
    known.data = task;
  } else {
    state.tasks.set(task.id, { row, data: task });
    $("tasks").tBodies[0].prepend(row); // newest first
  }
}

function removeTask(id) {
  const known = state.tasks.get(id);
  if (known) {
    known.row.remove();
    state.tasks.delete(id);
  }
}

function taskRow(task) {
  const status = el("td", { class: "status" },
    el("span", { class: "badge " + task.state, text: task.status }),
    el("progress", { max: 100, value: task.progress, title: task.progress + "%" }),
    el("span", { class: "pct", text: task.progress + "%" }));
  if (task.error) status.append(el("div", { class: "error", text: task.error }));
  const media = [task.size, task.format].filter(Boolean).join(" ");
  const facts = [media, task.duration_s === null ? null : seconds(task.duration_s),
    task.polls + " polls"];
  return el("tr", { "data-task": task.id, class: task.state },
    el("td", { class: "task" },
      el("div", {},
        el("span", { class: "family " + task.label, text: task.label, title: "route: " + task.route }),
        " ",
        el("span", { class: "model", text: task.model })),
      el("div", { class: "id mono", text: task.id }),
      el("div", { class: "key mono", text: task.key })),
    el("td", { class: "prompt", title: task.prompt, text: excerpt(task.prompt, 140) }),
    status,
    el("td", { class: "timing" },
      el("div", { text: "created " + hms(task.created_at) }),
      el("div", { text: (task.terminal ? "took " : "for ") + task.elapsed_s.toFixed(1) + " s" }),
      el("div", { class: "dim", text: facts.filter(Boolean).join(" · ") })),
    el("td", { class: "credits", text: task.credits_consumed + " / " + task.credits }),
    outputCell(task));
}

function seconds(value) {
  return (Number.isInteger(value) ? value : value.toFixed(1)) + " s";
}

// A finished task's files: thumbnails of images, small muted players of videos, players of
// audio that load nothing until played. Each opens full size in the dialog.
function outputCell(task) {
  const cell = el("td", { class: "output" });
  task.files.forEach((url, n) => {
    const what = task.label + " " + n + " of " + task.id;
    const open = (event) => {
      event.preventDefault();
      showFile(url, task);
    };
    if (task.kind === "video") {
      const link = el("a", { href: url, class: "open", title: "full size", text: "⤢" });
      link.addEventListener("click", open);
      cell.append(el("div", { class: "player" }, player("video", url, what), link));
    } else if (task.kind === "audio") {
      cell.append(el("div", { class: "player" }, player("audio", url, what)));
    } else {
      const img = el("img", { src: url, alt: what, loading: "lazy" });
      const link = el("a", { href: url, title: "full size" }, img);
      link.addEventListener("click", open);
      cell.append(link);
    }
  });
  return cell;
}

function player(tag, url, label) {
  // videos load their metadata (size, duration) at once; audio nothing until played
  const attrs = { src: url, controls: true, "aria-label": label, title: label };
  if (tag === "video") Object.assign(attrs, { muted: true, playsinline: true, preload: "metadata" });
  else attrs.preload = "none";
  const node = el(tag, attrs);
  node.muted = tag === "video"; // the attribute alone does not mute an element made by script
  return node;
}

function showFile(url, task) {
  const body = $("detail-body");
  const name = url.split("/").pop();
  const what = "full size " + task.label + " of " + task.id;
  const shown = task.kind === "video"
    ? player("video", url, what)
    : el("img", { src: url, alt: what });
  shown.classList.add("full");
  const title = [task.model, task.size, task.duration_s === null ? null : seconds(task.duration_s)];
  body.replaceChildren(
    el("h3", { text: title.filter(Boolean).join(" · ") }),
    el("p", { class: "mono", text: "/files/" + task.id + "/" + name }),
    shown);
  if (!$("detail").open) $("detail").showModal();
}

// -- requests ---------------------------------------------------------------------------

function addRequest(entry) {
  if (state.requests.has(entry.seq)) return;
  const path = entry.path + (entry.query ? "?" + entry.query : "");
  const ok = entry.status < 400;
  const row = el("tr", { "data-seq": entry.seq, class: ok ? "ok" : "failed", tabindex: 0 },
    el("td", { class: "dim", text: entry.seq }),
    el("td", { text: hms(entry.time) }),
    el("td", { class: "mono" }, el("b", { text: entry.method }), " " + excerpt(path, 90)),
    el("td", { class: "mono", text: entry.key || "—" }),
    el("td", { class: "status" },
      el("span", { class: "badge " + (ok ? "succeeded" : "failed"), text: entry.status }),
      entry.error ? el("div", { class: "error", text: excerpt(entry.error, 160) }) : null),
    el("td", { text: entry.latency_ms === null ? "" : entry.latency_ms.toFixed(1) + " ms" }),
    el("td", { class: "dim", text: entry.rule || "" }));
  const open = () => showRequest(entry.seq);
  row.addEventListener("click", open);
  row.addEventListener("keydown", (event) => {
    if (event.key === "Enter") open();
  });
  state.requests.set(entry.seq, row);
  $("requests").tBodies[0].prepend(row);
}

async function showRequest(seq) {
  const body = $("detail-body");
  body.replaceChildren(el("p", { text: "Loading request " + seq + "…" }));
  if (!$("detail").open) $("detail").showModal();
  let entry;
  try {
    const response = await fetch("/_emulator/ui/requests/" + encodeURIComponent(seq));
    entry = await response.json();
    if (!response.ok) throw new Error(entry.error ? entry.error.message : "HTTP " + response.status);
  } catch (error) {
    body.replaceChildren(el("p", { class: "error", text: error.message }));
    return;
  }
  const path = entry.path + (entry.query ? "?" + entry.query : "");
  const answer = { status: entry.status };
  if (entry.error) answer.error = entry.error;
  if (entry.task_id) answer.task_id = entry.task_id;
  if (entry.response) Object.assign(answer, entry.response);  // a chat call's completion
  const facts = el("dl", {},
    el("dt", { text: "time" }), el("dd", { text: entry.time }),
    el("dt", { text: "key" }), el("dd", { class: "mono", text: entry.key || "—" }),
    el("dt", { text: "latency" }), el("dd", { text: entry.latency_ms + " ms" }),
    el("dt", { text: "scenario rule" }), el("dd", { text: entry.rule || "none" }));
  body.replaceChildren(
    el("h3", { class: "mono", text: entry.method + " " + path }),
    facts,
    entry.transcript ? el("h4", { text: "Transcript" }) : null,
    entry.transcript ? transcript(entry.transcript) : null,
    el("h4", { text: "Request body" }),
    el("pre", { class: "request-body", text: pretty(entry.body) }),
    el("h4", { text: "Response" }),
    el("pre", { class: "response-body", text: JSON.stringify(answer, null, 2) }));
}

// A chat call as a conversation: each message sent, then the reply and what it cost. Text only.
function transcript(chat) {
  const list = el("ol", { class: "transcript" });
  for (const message of chat.messages) list.append(turn(message, false));
  if (chat.reply) list.append(turn(chat.reply, true));
  const box = el("div", { class: "chat" }, list);
  if (!chat.reply) {
    box.append(el("p", { class: "dim chat-facts", text: "no reply (the call was refused)" }));
    return box;
  }
  const usage = chat.usage || {};
  const facts = [
    "finish " + chat.finish_reason,
    usage.prompt_tokens + " prompt + " + usage.completion_tokens + " completion tokens",
    chat.credits + (chat.credits === 1 ? " credit" : " credits"),
    chat.stream ? "streamed" : "not streamed",
  ];
  if (chat.fault) {
    facts.push("broken by fault " + chat.fault + (chat.cut ? " (connection cut)" : ""));
  }
  box.append(el("p", { class: "dim chat-facts", text: facts.join(" · ") }));
  return box;
}

function turn(message, reply) {
  const item = el("li", { class: "turn " + (reply ? "reply" : "sent") },
    el("span", { class: "role family", text: message.role + (reply ? " (reply)" : "") }));
  if (message.tool_call_id) {
    item.append(el("span", { class: "dim mono", text: " result of " + message.tool_call_id }));
  }
  if (message.text !== null && message.text !== undefined) {
    item.append(el("div", { class: "text", text: message.text }));
  }
  for (const call of message.tool_calls || []) {
    const shown = { name: call.name, arguments: call.arguments };
    item.append(el("pre", { class: "tool-call", text: JSON.stringify(shown) }));
  }
  return item;
}

function pretty(value) {
  if (value === null || value === undefined) return "(no body)";
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}

// -- controls ---------------------------------------------------------------------------

async function control(method, path, body, contentType) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = contentType || "application/json";
    init.body = contentType ? body : JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error ? data.error.message : "HTTP " + response.status);
  return data;
}

function flash(text, isError) {
  const node = $("flash");
  node.textContent = text;
  node.className = isError ? "error" : "";
}

function scenarioError(message) {
  const node = $("scenario-error");
  node.textContent = message || "";
  node.hidden = !message;
}

async function loadScenarios() {
  const data = await control("GET", "/_emulator/scenario");
  const selector = $("scenario-select");
  selector.replaceChildren(...data.library.map((name) => el("option", { value: name, text: name })));
  if (!data.library.includes(data.name)) selector.prepend(el("option", { value: data.name, text: data.name }));
  selector.value = data.name;
  selector.dataset.current = data.name;
}

function on(id, handler) {
  $(id).addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await handler();
    } catch (error) {
      flash(error.message, true);
    }
    refresh(false);
  });
}

function setup() {
  $("key-filter").value = state.key;
  $("key-filter").addEventListener("input", () => {
    state.key = $("key-filter").value.trim();
    refresh(true);
  });
  $("detail-close").addEventListener("click", () => $("detail").close());
  $("detail").addEventListener("close", () => {
    for (const media of $("detail-body").querySelectorAll("video, audio")) media.pause();
  });
  $("detail").addEventListener("click", (event) => {
    if (event.target === $("detail")) $("detail").close();
  });
  on("scenario-form", async () => {
    const name = $("scenario-select").value;
    try {
      await control("PUT", "/_emulator/scenario", { scenario: name });
    } catch (error) {
      scenarioError(error.message);
      throw error;
    }
    scenarioError("");
    flash("Scenario is now " + name);
  });
  on("yaml-form", async () => {
    let data;
    try {
      data = await control("PUT", "/_emulator/scenario", $("scenario-yaml").value, "application/yaml");
    } catch (error) {
      scenarioError(error.message);
      throw error;
    }
    scenarioError("");
    flash("Scenario is now " + data.name);
  });
  on("clock-form", async () => {
    const seconds = Number($("advance-seconds").value);
    const data = await control("POST", "/_emulator/clock/advance", { seconds });
    flash("Clock advanced by " + seconds + " s to " + data.now);
  });
  on("credits-form", async () => {
    const key = $("credits-key").value.trim();
    const credits = Number($("credits-value").value);
    const data = await control("PUT", "/_emulator/keys/" + encodeURIComponent(key), { credits });
    flash(data.key + " has " + data.credits + " credits (" + data.reserved + " reserved)");
  });
  on("reset-form", async () => {
    await control("POST", "/_emulator/reset");
    refresh(true);
    await loadScenarios();
    scenarioError("");
    flash("Emulator reset");
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refresh(false);
  });
  loadScenarios().catch((error) => flash(error.message, true));
  schedule(0);
}

document.addEventListener("DOMContentLoaded", setup);
