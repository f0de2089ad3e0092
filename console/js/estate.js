// The estate: every host with its databases, their db snapshots and the echo DBs made from
// them, a page at a time (the topology's `q`, `after` and `limit`), so that a thousand hosts
// cost one page's bytes.

import { ApiError, call, errorBox } from "./api.js";
import { ago, debounce, fill, h, size, when } from "./dom.js";
import * as actions from "./actions.js";

const PAGE = 20;
const view = { q: "", kind: "all", cursors: [""], page: 0, open: new Map() };

export function renderEstate(main) {
  const search = h("input", { id: "estate-search", type: "search", value: view.q,
    placeholder: "host, database or echo DB name", autocomplete: "off" });
  const kind = h("select", { id: "estate-kind" },
    ...[["all", "All databases"], ["source", "Sources only"], ["echo", "Echo DBs only"]]
      .map(([value, label]) => h("option", { value, selected: view.kind === value }, label)));
  const body = h("div", { id: "estate-body", "aria-live": "polite", "aria-busy": "true" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages of hosts" });

  const reload = () => load(body, pager);
  search.addEventListener("input", debounce(() => {
    view.q = search.value.trim();
    view.cursors = [""];
    view.page = 0;
    reload();
  }, 250));
  kind.addEventListener("change", () => { view.kind = kind.value; reload(); });

  fill(main,
    h("div", { class: "page-head" },
      h("h1", {}, "Estate"),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "primary", id: "new-clone", onclick: () => actions.clone({}, reload) }, "Clone…"),
        h("button", { type: "button", id: "new-snapshot", onclick: () => actions.snapshot({}, reload) }, "Snapshot…"))),
    h("div", { class: "filters", role: "search" },
      h("label", { for: "estate-search" }, "Search"), search,
      h("label", { for: "estate-kind" }, "Show"), kind),
    body, pager);
  reload();
  return reload;
}

async function load(body, pager) {
  body.setAttribute("aria-busy", "true");
  const params = new URLSearchParams({ limit: String(PAGE) });
  if (view.q) params.set("q", view.q);
  const after = view.cursors[view.page];
  if (after) params.set("after", after);
  let entries;
  let total;
  try {
    const answer = await call("GET", `/api/echo/v1/topology?${params}`);
    entries = answer.data;
    total = Number(answer.headers.get("x-total-count") || entries.length);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    fill(body, errorBox(err));
    body.setAttribute("aria-busy", "false");
    return;
  }
  if (entries.length) view.cursors[view.page + 1] = entries[entries.length - 1].host.id;
  const reload = () => load(body, pager);
  fill(body, entries.length
    ? entries.map((entry) => hostCard(entry, reload))
    : h("p", { class: "muted" }, view.q ? `No host or database matches “${view.q}”.` : "No hosts are registered yet."));
  const first = view.page * PAGE + 1;
  const last = view.page * PAGE + entries.length;
  fill(pager,
    h("button", { type: "button", disabled: view.page === 0, onclick: () => { view.page -= 1; reload(); } }, "← Previous"),
    h("span", { class: "muted", id: "estate-count" }, total ? `Hosts ${first}–${last} of ${total}` : "No hosts"),
    h("button", { type: "button", disabled: last >= total, onclick: () => { view.page += 1; reload(); } }, "Next →"));
  body.setAttribute("aria-busy", "false");
  // When the estate first showed: the time to first render the tests report.
  if (!performance.getEntriesByName("estate-rendered").length) performance.mark("estate-rendered");
}

function hostCard(entry, reload) {
  const host = entry.host;
  const databases = entry.databases.filter((db) =>
    view.kind === "all" || (view.kind === "echo") === Boolean(db.parent));
  return h("section", { class: "host", dataset: { host: host.id }, "aria-label": `Host ${host.id}` },
    h("header", {},
      h("h2", {}, host.name || host.id),
      h("span", { class: `badge ${host.is_connected ? "ok" : "bad"}` }, host.is_connected ? "connected" : "disconnected"),
      h("span", { class: "facts" },
        `last seen ${ago(host.last_seen_ts)} · ${host.os_version || host.os || "OS unknown"} · agent ${host.agent_version || "—"}`)),
    databases.length
      ? h("table", { class: "dbs" },
        h("thead", {}, h("tr", {}, ["Database", "Status", "Size", "Files and volumes", "Lineage", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, databases.map((db) => databaseRows(host, db, reload))))
      : h("p", { class: "muted" }, entry.databases.length ? "No database of this kind." : "No databases reported."));
}

function databaseRows(host, db, reload) {
  const total = db.files.reduce((sum, file) => sum + file.size_mb, 0);
  const volumes = [...new Set(db.files.map((file) => file.volume_name).filter(Boolean))];
  const isEcho = Boolean(db.parent);
  const rows = [h("tr", { class: isEcho ? "echo" : "source", dataset: { db: db.name, dbId: db.id } },
    h("th", { scope: "row" }, db.name, isEcho ? h("span", { class: "badge echo" }, "echo DB") : null),
    h("td", {}, db.status),
    h("td", {}, size(total)),
    h("td", {}, `${db.files.length} file${db.files.length === 1 ? "" : "s"}`,
      volumes.length ? h("div", { class: "muted" }, `on ${volumes.join(", ")}`) : null),
    h("td", {}, isEcho ? lineage(db) : (db.db_snapshot_allowed ? "source" : h("span", { class: "muted" }, db.db_snapshot_disallowed_reason))),
    h("td", { class: "row-actions" }, isEcho ? echoButtons(host, db, reload) : sourceButtons(host, db, reload)))];
  if (db.db_snapshots.length) {
    rows.push(h("tr", { class: "snapshots" }, h("td", { colspan: 6 }, snapshotList(host, db, reload))));
  }
  return rows;
}

function lineage(db) {
  const life = [];
  if (db.protected) life.push(h("span", { class: "badge warn" }, "protected"));
  if (db.expires_ts) life.push(h("span", { class: "expiry", title: when(db.expires_ts) }, `expires ${inWords(db.expires_ts)}`));
  else life.push(h("span", { class: "muted" }, "no expiry"));
  return [h("div", {}, `from ${db.parent.src_host_id} / db ${db.parent.src_db_id}`),
    h("div", { class: "muted" }, `snapshot ${db.parent.snap_id}`), h("div", {}, life)];
}

function inWords(ts) {
  const secs = ts - Date.now() / 1000;
  if (secs <= 0) return "now (its delete is due)";
  if (secs < 3600) return `in ${Math.ceil(secs / 60)} min`;
  if (secs < 172800) return `in ${Math.round(secs / 3600)} h`;
  return `on ${when(ts)}`;
}

function sourceButtons(host, db, reload) {
  return [
    h("button", { type: "button", "aria-label": `Snapshot ${db.name} on ${host.id}`, onclick: () => actions.snapshot({ host: host.id, db: db.id }, reload) }, "Snapshot"),
    h("button", { type: "button", "aria-label": `Clone ${db.name} from ${host.id}`, onclick: () => actions.clone({ host: host.id, db: db.id }, reload) }, "Clone"),
  ];
}

function echoButtons(host, db, reload) {
  const echo = { host: host.id, id: db.id, name: db.name, parent: db.parent, ttl: db.ttl_secs, expires: db.expires_ts, protected: db.protected };
  return [
    h("button", { type: "button", "aria-label": `Refresh ${db.name} on ${host.id}`, onclick: () => actions.refresh(echo, reload) }, "Refresh"),
    h("button", { type: "button", "aria-label": `Expiry and protection of ${db.name}`, onclick: () => actions.lifecycle(echo, reload) }, "Lifecycle"),
    h("button", { type: "button", class: "danger", "aria-label": `Delete ${db.name} on ${host.id}`, onclick: () => actions.deleteEcho(echo, reload) }, "Delete"),
  ];
}

function snapshotList(host, db, reload) {
  const key = `${host.id}/${db.id}`;
  const snaps = [...db.db_snapshots].sort((a, b) => b.timestamp - a.timestamp);
  const details = h("details", { open: view.open.get(key) ?? snaps.length <= 3 },
    h("summary", {}, `${snaps.length} db snapshot${snaps.length === 1 ? "" : "s"} of ${db.name}`),
    h("ul", { class: "snaps" }, snaps.map((snap) => h("li", { dataset: { snapshot: snap.id } },
      h("span", { class: "snap-time" }, when(snap.timestamp)),
      h("span", { class: `badge ${snap.consistency_level === "application" ? "ok" : "plain"}` }, snap.consistency_level),
      h("code", {}, snap.id),
      snap.task_id ? h("a", { href: `#/tasks/${encodeURIComponent(snap.task_id)}`, title: "The task that took it: its freeze time and steps" }, "taken by task") : null,
      snap.deletable
        ? h("span", { class: "muted" }, "deletable")
        : h("span", { class: "in-use" }, "in use by ", (snap.echo_dbs || []).map((e) => `${e.host_id}/${e.name}`).join(", ") || "echo DBs"),
      h("span", { class: "row-actions" },
        h("button", { type: "button", "aria-label": `Clone from snapshot ${snap.id}`, onclick: () => actions.clone({ host: host.id, db: db.id, snapshot: snap.id }, reload) }, "Clone"),
        h("button", { type: "button", class: "danger", "aria-label": `Delete snapshot ${snap.id}`, onclick: () => actions.deleteSnapshot({ ...snap, host: host.id }, reload) }, "Delete"))))));
  details.addEventListener("toggle", () => view.open.set(key, details.open));
  return details;
}
