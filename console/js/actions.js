// The Echo operations as forms. Each form runs the operation's `__validate` dry run as it is
// filled in and shows its verdict in words; Confirm stays disabled until the dry run of what
// is on screen passed. A task-creating action then opens its task page, which follows it.

import { ApiError, del, errorBox, get, patch, post } from "./api.js";
import { debounce, fill, h, toast, when } from "./dom.js";

const dialog = () => document.getElementById("dialog");

/** The verdict of a dry run: `{valid, issues}`, a refusal turned into one issue. */
async function dryRun(method, path, body) {
  try {
    const answer = method === "DELETE" ? await del(path, body) : await post(path, body);
    return { valid: answer.valid, issues: answer.issues || [] };
  } catch (err) {
    if (err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 401) {
      return { valid: false, issues: [{ issue_type: err.code, description: err.message, ref_id: err.refId }] };
    }
    throw err;
  }
}

/**
 * A form in the dialog. `read()` gives the request body (or null while incomplete),
 * `check(body)` the dry run, `act(body)` the operation.
 */
function form({ title, fields, read, check, act, confirmLabel, danger = false, summary }) {
  const box = dialog();
  const verdict = h("div", { class: "verdict", id: "dry-run", "aria-live": "polite" });
  const confirm = h("button", { type: "submit", class: danger ? "danger" : "primary", id: "confirm", disabled: true }, confirmLabel);
  const outcome = h("div", { class: "form-status", id: "form-status", "aria-live": "assertive" });
  let checked = null;

  const recheck = debounce(async () => {
    const body = read();
    confirm.disabled = true;
    checked = null;
    if (!body) { fill(verdict, h("p", { class: "muted" }, "Fill in the form to see whether it would work.")); return; }
    fill(verdict, h("p", { class: "muted" }, "Dry run…"));
    try {
      const result = await check(body);
      if (JSON.stringify(read()) !== JSON.stringify(body)) return; // changed meanwhile
      if (result.valid) {
        fill(verdict, h("p", { class: "valid" }, "✓ Dry run passed: ", summary ? summary(body) : "this would work."));
        checked = JSON.stringify(body);
        confirm.disabled = false;
      } else {
        fill(verdict, h("p", { class: "invalid" }, "✗ The dry run found why this would fail:"),
          h("ul", { class: "issues" }, result.issues.map((issue) => h("li", {},
            h("strong", { class: "code" }, issue.issue_type), " ", issue.description,
            issue.ref_id ? h("span", { class: "ref" }, ` (ref id ${issue.ref_id})`) : null))));
      }
    } catch (err) {
      fill(verdict, errorBox(err));
    }
  }, 300);

  const element = h("form", { method: "dialog", class: "action-form", oninput: recheck, onchange: recheck,
    onsubmit: async (event) => {
      event.preventDefault();
      if (event.submitter?.value === "cancel") { box.close(); return; }
      const body = read();
      if (!body || JSON.stringify(body) !== checked) { recheck(); return; }
      confirm.disabled = true;
      fill(outcome, "Sending…");
      try {
        await act(body);
        box.close();
      } catch (err) {
        fill(outcome, errorBox(err));
        confirm.disabled = false;
      }
    } },
  h("h2", { id: "dialog-title" }, title),
  h("div", { class: "fields" }, fields),
  verdict,
  outcome,
  h("div", { class: "buttons" },
    h("button", { type: "submit", value: "cancel", formnovalidate: true }, "Cancel"),
    confirm));
  fill(box, element);
  if (!box.open) box.showModal();
  element.querySelector("input, select, textarea")?.focus();
  recheck();
  return { recheck };
}

const field = (id, label, control, hint) => h("div", { class: "field" },
  h("label", { for: id }, label), control, hint ? h("small", { class: "muted" }, hint) : null);

function select(id, options, selected) {
  return h("select", { id, name: id },
    options.map(([value, label]) => h("option", { value, selected: value === selected }, label)));
}

function refill(selectEl, options, selected) {
  fill(selectEl, options.map(([value, label]) => h("option", { value, selected: value === selected }, label)));
}

/** The host's topology entry: its databases and their snapshots. */
async function hostEntry(hostId) {
  const entries = await get(`/api/echo/v1/topology?q=${encodeURIComponent(hostId)}&limit=1000`);
  return entries.find((entry) => entry.host.id === hostId);
}

const ttlSecs = (hours) => (hours ? Math.round(Number(hours) * 3600) : undefined);

/** Opens the task page of a task the API just created. */
function follow(task) {
  toast(`Task ${task.command_type} started (ref id ${task.ref_id}).`);
  location.hash = `#/tasks/${task.request_id}`;
}

export async function snapshot({ host, db }) {
  const hosts = await get("/api/v1/hosts") || [];
  const hostSel = select("snap-host", hosts.map((h_) => [h_.host_id, h_.host_id]), host || hosts[0]?.host_id);
  const dbsBox = h("fieldset", { id: "snap-dbs" }, h("legend", {}, "Databases"));
  const level = select("snap-level", [["application", "application-consistent (freeze)"], ["crash", "crash-consistent"]], "application");
  const prefix = h("input", { id: "snap-prefix", placeholder: "snap", autocomplete: "off" });
  let handle;
  const showDbs = async () => {
    const entry = await hostEntry(hostSel.value);
    fill(dbsBox, h("legend", {}, "Databases"), (entry?.databases || []).filter((d) => !d.parent).map((d) =>
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "snap-db", value: d.id, checked: d.id === db }), ` ${d.name}`)));
    handle?.recheck();
  };
  hostSel.addEventListener("change", showDbs);
  const read = () => {
    const ids = [...dbsBox.querySelectorAll("input:checked")].map((c) => c.value);
    if (!hostSel.value || !ids.length) return null;
    const body = { source_host_id: hostSel.value, database_ids: ids, consistency_level: level.value };
    if (prefix.value.trim()) body.name_prefix = prefix.value.trim();
    return body;
  };
  handle = form({
    title: "Take a db snapshot",
    fields: [field("snap-host", "Source host", hostSel), dbsBox, field("snap-level", "Consistency", level),
      field("snap-prefix", "Name prefix", prefix, "4 to 20 of a-z 0-9 _ -, starting with a letter; “snap” when empty")],
    read,
    check: (body) => dryRun("POST", "/api/echo/v1/db_snapshots/__validate", body),
    act: async (body) => follow(await post("/api/echo/v1/db_snapshots", body)),
    confirmLabel: "Take snapshot",
    summary: (body) => `a ${body.consistency_level} snapshot of ${body.database_ids.length} database(s) on ${body.source_host_id}.`,
  });
  await showDbs();
}

export async function clone({ host, db, snapshot: snapId }) {
  const hosts = await get("/api/v1/hosts") || [];
  const hostOptions = hosts.map((h_) => [h_.host_id, `${h_.host_id}${h_.is_connected ? "" : " (disconnected)"}`]);
  const source = select("clone-source", hostOptions, host || hosts[0]?.host_id);
  const database = select("clone-db", [], db);
  const from = select("clone-from", [["new", "a new snapshot, taken now"]], snapId || "new");
  const level = select("clone-level", [["application", "application-consistent (freeze)"], ["crash", "crash-consistent"]], "application");
  const target = select("clone-state", [["online", "online"], ["recovery", "recovery (restoring)"]], "online");
  const ttl = h("input", { id: "clone-ttl", type: "number", min: "0.01", step: "any", placeholder: "never expires" });
  const protect = h("input", { id: "clone-protected", type: "checkbox" });
  const destinations = h("div", { id: "clone-destinations", class: "destinations" });
  let entry = null;
  let handle;

  const addDestination = (hostId = "", name = "") => {
    const row = h("div", { class: "destination" },
      h("label", {}, "Host ", select("", hostOptions.filter(([id]) => id !== source.value), hostId)),
      h("label", {}, "New database name ", h("input", { class: "dest-name", value: name, autocomplete: "off", required: true })),
      h("button", { type: "button", class: "remove", "aria-label": "Remove this destination", onclick: () => { row.remove(); handle?.recheck(); } }, "✕"));
    destinations.append(row);
    handle?.recheck();
  };
  const showSource = async () => {
    entry = await hostEntry(source.value);
    const sources = (entry?.databases || []).filter((d) => !d.parent);
    refill(database, sources.map((d) => [d.id, d.name]), db && sources.some((d) => d.id === db) ? db : sources[0]?.id);
    showSnapshots();
  };
  const showSnapshots = () => {
    const chosen = (entry?.databases || []).find((d) => d.id === database.value);
    const snaps = [...(chosen?.db_snapshots || [])].sort((a, b) => b.timestamp - a.timestamp);
    refill(from, [["new", "a new snapshot, taken now"], ...snaps.map((s) => [s.id, `snapshot of ${when(s.timestamp)} (${s.consistency_level})`])],
      snaps.some((s) => s.id === snapId) ? snapId : "new");
    level.disabled = from.value !== "new";
    handle?.recheck();
  };
  source.addEventListener("change", showSource);
  database.addEventListener("change", showSnapshots);
  from.addEventListener("change", () => { level.disabled = from.value !== "new"; });

  const read = () => {
    const dests = [...destinations.querySelectorAll(".destination")].map((row) => ({
      host_id: row.querySelector("select").value, db_id: database.value, db_name: row.querySelector(".dest-name").value.trim(),
    }));
    if (!source.value || !database.value || !dests.length || dests.some((d) => !d.host_id || !d.db_name)) return null;
    const body = { destinations: dests, target_state: target.value };
    if (ttl.value) body.ttl_secs = ttlSecs(ttl.value);
    if (protect.checked) body.protected = true;
    if (from.value === "new") Object.assign(body, { source_host_id: source.value, database_ids: [database.value], consistency_level: level.value });
    return body;
  };
  handle = form({
    title: "Clone a database",
    fields: [
      field("clone-source", "Source host", source), field("clone-db", "Database", database),
      field("clone-from", "From", from), field("clone-level", "Consistency of a new snapshot", level),
      h("fieldset", {}, h("legend", {}, "Destinations"), destinations,
        h("button", { type: "button", id: "add-destination", onclick: () => addDestination() }, "Add a destination")),
      field("clone-state", "Target state", target),
      field("clone-ttl", "Expires after (hours)", ttl, "empty: kept until deleted"),
      h("label", { class: "check" }, protect, " Protected (never expires, cannot be deleted until unprotected)"),
    ],
    read,
    check: (body) => (from.value === "new"
      ? dryRun("POST", "/api/echo/v1/echo_dbs/__validate", body)
      : dryRun("POST", `/api/echo/v1/db_snapshots/${encodeURIComponent(from.value)}/echo_db/__validate`, body)),
    act: async (body) => follow(from.value === "new"
      ? await post("/api/echo/v1/echo_dbs", body)
      : await post(`/api/echo/v1/db_snapshots/${encodeURIComponent(from.value)}/echo_db`, body)),
    confirmLabel: "Clone",
    summary: (body) => `${body.destinations.map((d) => `${d.host_id}/${d.db_name}`).join(", ")} from ${from.value === "new" ? "a new snapshot" : from.value}.`,
  });
  await showSource();
  addDestination();
}

export async function refresh(echo) {
  const snaps = (await get("/api/echo/v1/db_snapshots") || [])
    .filter((s) => s.host_id === echo.parent.src_host_id && s.databases.some((d) => d.db_id === echo.parent.src_db_id) && s.id !== echo.parent.snap_id)
    .sort((a, b) => b.timestamp - a.timestamp);
  const snapSel = select("refresh-snapshot", snaps.map((s) => [s.id, `${when(s.timestamp)} · ${s.consistency_level} · ${s.id}`]), snaps[0]?.id);
  const target = select("refresh-state", [["online", "online"], ["recovery", "recovery (restoring)"]], "online");
  form({
    title: `Refresh ${echo.name} on ${echo.host}`,
    fields: [h("p", {}, `Replaces ${echo.name} with the same database from another snapshot of ${echo.parent.src_host_id}. What is in ${echo.name} now is lost.`),
      snaps.length ? field("refresh-snapshot", "From snapshot", snapSel) : h("p", { class: "notice" }, "There is no other snapshot of its source yet: take one first."),
      field("refresh-state", "Target state", target)],
    read: () => (snapSel.value ? { snapshot_id: snapSel.value, db_names: [echo.name], target_state: target.value } : null),
    check: (body) => dryRun("POST", `/api/echo/v1/hosts/${encodeURIComponent(echo.host)}/databases/_refresh/__validate`, body),
    act: async (body) => follow(await post(`/api/echo/v1/hosts/${encodeURIComponent(echo.host)}/databases/_refresh`, body)),
    confirmLabel: "Refresh",
    danger: true,
    summary: (body) => `${echo.name} would be replaced from ${body.snapshot_id}.`,
  });
}

export function deleteEcho(echo) {
  form({
    title: `Delete echo DB ${echo.name}?`,
    fields: [h("p", { class: "goes" }, `Goes: the database ${echo.name} on ${echo.host} (detached), and its thin clones and mappings on the array. Its snapshot ${echo.parent.snap_id} stays.`)],
    read: () => ({ host_id: echo.host, database_id: echo.id }),
    check: (body) => dryRun("DELETE", "/api/echo/v1/echo_dbs/__validate", body),
    act: async (body) => follow(await del("/api/echo/v1/echo_dbs", body)),
    confirmLabel: `Delete ${echo.name}`,
    danger: true,
    summary: () => `${echo.name} can be deleted.`,
  });
}

export function deleteSnapshot(snap) {
  const path = `/api/echo/v1/db_snapshots/${encodeURIComponent(snap.id)}`;
  form({
    title: `Delete db snapshot ${snap.id}?`,
    fields: [h("p", { class: "goes" }, `Goes: the ${snap.consistency_level} snapshot of ${when(snap.timestamp)} on ${snap.host} and its volume group snapshots on the array.`)],
    read: () => ({}),
    check: () => dryRun("DELETE", `${path}/__validate`),
    act: async () => {
      const answer = await del(path);
      if (answer?.request_id) follow(answer);
      else toast(`Snapshot ${snap.id} deleted.`);
    },
    confirmLabel: "Delete snapshot",
    danger: true,
    summary: () => "no echo DB uses it.",
  });
}

/** Expiry, keep-alive and protection of an echo DB: direct edits, no task. */
export function lifecycle(echo, reload) {
  const base = `/api/echo/v1/hosts/${encodeURIComponent(echo.host)}/databases/${encodeURIComponent(echo.id)}`;
  const status = h("div", { class: "form-status", id: "lifecycle-status", "aria-live": "polite" });
  const hours = h("input", { id: "lifecycle-ttl", type: "number", min: "0.01", step: "any", value: echo.ttl ? String(echo.ttl / 3600) : "" });
  const done = async (what, change) => {
    try {
      await change();
      toast(what);
      dialog().close();
      reload();
    } catch (err) {
      fill(status, errorBox(err));
    }
  };
  const box = dialog();
  fill(box, h("form", { method: "dialog", class: "action-form", onsubmit: (e) => e.preventDefault() },
    h("h2", { id: "dialog-title" }, `Lifecycle of ${echo.name} on ${echo.host}`),
    h("p", {}, echo.expires ? `Expires ${when(echo.expires)} (ttl ${echo.ttl / 3600} h); then Flex deletes it.` : "It does not expire.",
      echo.protected ? " It is protected: it never expires and cannot be deleted." : ""),
    field("lifecycle-ttl", "Expire after (hours from now)", hours, "empty: never"),
    h("div", { class: "buttons" },
      h("button", { type: "button", id: "set-ttl", onclick: () => done("Expiry set.", () => patch(base, { ttl_secs: hours.value ? ttlSecs(hours.value) : null })) }, "Set expiry"),
      h("button", { type: "button", id: "keep-alive", disabled: !echo.ttl, onclick: () => done("Kept alive.", () => post(`${base}/_keepalive`, {})) }, "Keep alive (push expiry by its ttl)"),
      h("button", { type: "button", id: "toggle-protect", onclick: () => done(echo.protected ? "Protection removed." : "Protected.", () => patch(base, { protected: !echo.protected })) },
        echo.protected ? "Remove protection" : "Protect")),
    status,
    h("div", { class: "buttons" }, h("button", { type: "button", onclick: () => box.close() }, "Close"))));
  if (!box.open) box.showModal();
}
