// Keeping the views current without a reload. The event stream (`/api/echo/v1/events`) is read
// with fetch rather than EventSource, because EventSource cannot send the bearer token. While
// the stream is down the console polls instead, backing off from 2 s to 30 s, and reconnects
// the stream with the same back-off, resuming after the last event it saw.

import { session } from "./api.js";

const listeners = new Set();
let lastId = null;
let controller = null;
let pollTimer = null;
let backoff = 2000;
let state = "offline";

/** `fn(event)` for each event; `fn(null)` on each poll tick while the stream is down. */
export function onChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function emit(event) {
  for (const fn of listeners) {
    try { fn(event); } catch (err) { console.error(err); }
  }
}

function show(next) {
  state = next;
  const badge = document.getElementById("live");
  if (badge) {
    badge.textContent = next === "live" ? "live" : next === "polling" ? "polling" : "offline";
    badge.className = `live ${next}`;
  }
}

export function start() {
  stop();
  connect();
}

export function stop() {
  controller?.abort();
  controller = null;
  clearTimeout(pollTimer);
  pollTimer = null;
  show("offline");
}

async function connect() {
  if (!session.token) return;
  const mine = new AbortController();
  controller = mine;
  const headers = { Accept: "text/event-stream", Authorization: `Bearer ${session.token}` };
  if (lastId !== null) headers["Last-Event-ID"] = String(lastId);
  try {
    const response = await fetch("/api/echo/v1/events", { headers, signal: mine.signal });
    if (!response.ok || !response.body) throw new Error(`event stream: ${response.status}`);
    const wasDown = state === "polling";
    show("live");
    backoff = 2000;
    clearTimeout(pollTimer);
    // Whatever changed while the stream was down (a first connection has missed nothing).
    if (wasDown) emit(null);
    await read(response.body);
    throw new Error("event stream ended");
  } catch (err) {
    if (mine.signal.aborted) return;
    fallBack();
  }
}

async function read(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      dispatch(block);
    }
  }
}

function dispatch(block) {
  let data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("id:")) lastId = Number(line.slice(3).trim());
    else if (line.startsWith("data:")) data += line.slice(5).trim();
  }
  if (!data) return; // a keep-alive comment
  try { emit(JSON.parse(data)); } catch { /* not an event this console knows */ }
}

function fallBack() {
  show("polling");
  clearTimeout(pollTimer);
  pollTimer = setTimeout(() => {
    emit(null);
    backoff = Math.min(backoff * 2, 30000);
    connect();
  }, backoff);
}

export function liveState() { return state; }
