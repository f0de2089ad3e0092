// Tasks: the live list, filtered by state, command and ref id, and a task's own page with its
// steps, the time each waited on the SDP and the agents, retries, and its error in words.

import { ApiError, errorBox, get, post } from "./api.js";
import { duration, fill, h, toast, when } from "./dom.js";

const STATES = ["running", "completed", "failed", "aborted"];
const COMMANDS = ["CreateDBSnapshotCommand", "CreateCloneCommand", "ImportDBSnapshotCommand",
  "ReplaceDBCommand", "DeleteCommand", "DeleteDBSnapshotCommand"];
const PAGE = 100;
const filters = { state: "", command_type: "", ref_id: "" };
/** The `before` cursor of each page seen, the newest page first. */
const pages = { cursors: [""], at: 0 };

const COMMAND_WORDS = {
  CreateDBSnapshotCommand: "snapshot", CreateCloneCommand: "clone", ImportDBSnapshotCommand: "clone from snapshot",
  ReplaceDBCommand: "refresh", DeleteCommand: "delete echo DB", DeleteDBSnapshotCommand: "delete snapshot",
};
const words = (command) => COMMAND_WORDS[command] || command;

const badge = (state) => h("span", { class: `badge state-${state}` }, state);

/** A task's wall time: to now while it runs; from its steps' clocks (ms) when it has them. */
function taskTime(task) {
  const starts = (task.steps || []).map((s) => s.started_ms).filter(Boolean);
  const ends = (task.steps || []).map((s) => s.ended_ms).filter(Boolean);
  if (starts.length && ends.length && task.state !== "running") return Math.max(...ends) - Math.min(...starts);
  return ((task.state === "running" ? Date.now() / 1000 : task.update_ts) - task.create_ts) * 1000;
}

export function renderTasks(main) {
  const stateSel = h("select", { id: "task-state" }, h("option", { value: "" }, "any state"),
    STATES.map((s) => h("option", { value: s, selected: filters.state === s }, s)));
  const commandSel = h("select", { id: "task-command" }, h("option", { value: "" }, "any command"),
    COMMANDS.map((c) => h("option", { value: c, selected: filters.command_type === c }, words(c))));
  const refInput = h("input", { id: "task-ref", value: filters.ref_id, autocomplete: "off", placeholder: "ref id" });
  const body = h("div", { id: "tasks-body", "aria-live": "polite" });
  const reload = () => loadList(body);
  const changed = () => {
    pages.cursors = [""];
    pages.at = 0;
    filters.state = stateSel.value;
    filters.command_type = commandSel.value;
    filters.ref_id = refInput.value.trim();
    reload();
  };
  stateSel.addEventListener("change", changed);
  commandSel.addEventListener("change", changed);
  refInput.addEventListener("change", changed);
  fill(main, h("div", { class: "page-head" }, h("h1", {}, "Tasks")),
    h("div", { class: "filters", role: "search" },
      h("label", { for: "task-state" }, "State"), stateSel,
      h("label", { for: "task-command" }, "Command"), commandSel,
      h("label", { for: "task-ref" }, "Ref id"), refInput),
    body);
  reload();
  return reload;
}

async function loadList(body) {
  const params = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
  params.set("limit", String(PAGE));
  if (pages.cursors[pages.at]) params.set("before", pages.cursors[pages.at]);
  let tasks;
  try {
    tasks = await get(`/api/echo/v1/tasks?${params}`);
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) fill(body, errorBox(err));
    return;
  }
  if (tasks.length) pages.cursors[pages.at + 1] = tasks[tasks.length - 1].request_id;
  const reload = () => loadList(body);
  const pager = h("nav", { class: "pager", "aria-label": "Pages of tasks" },
    h("button", { type: "button", disabled: pages.at === 0, onclick: () => { pages.at -= 1; reload(); } }, "← Newer"),
    h("span", { class: "muted" }, pages.at === 0 ? `The newest ${PAGE} at most` : `Page ${pages.at + 1}`),
    h("button", { type: "button", disabled: tasks.length < PAGE, onclick: () => { pages.at += 1; reload(); } }, "Older →"));
  if (!tasks.length) { fill(body, h("p", { class: "muted" }, "No task matches."), pages.at ? pager : null); return; }
  fill(body,
    h("table", { class: "tasks" },
      h("thead", {}, h("tr", {}, ["State", "Command", "Ref id", "Hosts", "Started", "Duration", "Progress"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, tasks.map((task) => h("tr", { dataset: { task: task.request_id } },
        h("td", {}, badge(task.state)),
        h("td", {}, h("a", { href: `#/tasks/${task.request_id}` }, words(task.command_type))),
        h("td", {}, h("code", {}, task.ref_id)),
        h("td", {}, (task.hosts || []).join(", ") || "—"),
        h("td", {}, when(task.create_ts)),
        h("td", {}, duration(taskTime(task))),
        h("td", {}, task.progress ? `${task.progress.done}/${task.progress.total} · ${task.progress.step}${task.progress.phase === "undo" ? " (undoing)" : ""}` : "—"))))),
    pager);
}

/** How long an application-consistent snapshot kept the databases frozen, when it did. */
function frozen(task) {
  const step = (name) => (task.steps || []).find((s) => s.name === name && s.state === "completed");
  const freeze = step("freeze_databases");
  const thaw = step("thaw_databases");
  return freeze && thaw && freeze.started_ms && thaw.ended_ms ? thaw.ended_ms - freeze.started_ms : null;
}

export function renderTask(main, id) {
  const body = h("div", { id: "task-body", "aria-live": "polite" });
  fill(main, h("p", {}, h("a", { href: "#/tasks" }, "← All tasks")), body);
  const reload = () => loadTask(body, id);
  reload();
  return reload;
}

async function loadTask(body, id) {
  let task;
  try {
    task = await get(`/api/echo/v1/tasks/${encodeURIComponent(id)}?steps=true`);
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) fill(body, errorBox(err));
    return null;
  }
  const abort = task.state === "running"
    ? h("button", { type: "button", class: "danger", id: "abort", onclick: async (event) => {
      event.target.disabled = true;
      try {
        await post(`/api/echo/v1/tasks/${encodeURIComponent(id)}/abort`);
        toast("Abort asked: the task undoes what it did.");
        loadTask(body, id);
      } catch (err) {
        body.prepend(errorBox(err));
        event.target.disabled = false;
      }
    } }, "Abort")
    : null;
  const result = task.result || {};
  fill(body,
    h("div", { class: "page-head" },
      h("h1", { id: "task-title" }, `${words(task.command_type)} `, badge(task.state)),
      h("div", { class: "actions" }, abort)),
    h("dl", { class: "facts-grid" },
      h("dt", {}, "Request id"), h("dd", {}, h("code", {}, task.request_id)),
      h("dt", {}, "Ref id"), h("dd", {}, h("code", {}, task.ref_id)),
      h("dt", {}, "Command"), h("dd", {}, task.command_type),
      h("dt", {}, "Hosts"), h("dd", {}, (task.hosts || []).join(", ") || "—"),
      h("dt", {}, "Started"), h("dd", {}, when(task.create_ts)),
      h("dt", {}, task.state === "running" ? "Running for" : "Took"), h("dd", {}, duration(taskTime(task))),
      task.progress ? [h("dt", {}, "Progress"), h("dd", {}, h("progress", { max: task.progress.total, value: task.progress.done }),
        ` ${task.progress.done} of ${task.progress.total} steps${task.progress.phase === "undo" ? ", undoing" : ""}`)] : null),
    frozen(task) !== null ? h("p", { id: "task-frozen" }, `Databases frozen for ${duration(frozen(task))} (freeze to thaw, the SDP snapshot calls included).`) : null,
    task.error ? h("div", { class: "error", role: "alert", id: "task-error" }, h("strong", {}, "Why it failed: "), task.error) : null,
    result.db_snapshot ? h("p", {}, "Db snapshot: ", h("code", {}, result.db_snapshot.id)) : null,
    result.cloned_dbs?.length ? h("p", { id: "task-result" }, "Echo DBs: ",
      result.cloned_dbs.map((db) => `${db.host_id}/${db.name} (from ${db.source_host_id}/${db.source_db_name})`).join(", ")) : null,
    h("h2", {}, "Steps"),
    h("table", { class: "steps" },
      h("thead", {}, h("tr", {}, ["Step", "State", "Started", "Took", "Waited on SDP and agents", "Flex's own time", "Attempts", "Error"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, (task.steps || []).map((step) => h("tr", { class: `step-${step.state}`, dataset: { step: step.name } },
        h("th", { scope: "row" }, step.name.replaceAll("_", " ")),
        h("td", {}, badge(step.state)),
        h("td", {}, step.started_ms ? when(step.started_ms, true) : "—"),
        h("td", {}, step.started_ms && step.ended_ms ? duration(step.ended_ms - step.started_ms) : "—"),
        h("td", {}, step.waited_ms !== undefined ? duration(step.waited_ms) : "—"),
        h("td", {}, step.overhead_ms !== undefined ? duration(step.overhead_ms) : "—"),
        h("td", {}, step.attempts > 1 ? `${step.attempts} (${step.attempts - 1} retried)` : String(step.attempts ?? 0)),
        h("td", {}, step.error || ""))))));
  return task;
}
