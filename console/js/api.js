// The console's only way to the server: the public API, with the bearer token the user signed
// in with. The token lives in session storage, so it goes when the tab does.

import { h } from "./dom.js";

const TOKEN = "flex.token";
const WHO = "flex.who";

export const session = {
  get token() { return sessionStorage.getItem(TOKEN); },
  get who() { return sessionStorage.getItem(WHO) || ""; },
  start(token, who) {
    sessionStorage.setItem(TOKEN, token);
    sessionStorage.setItem(WHO, who);
  },
  end() {
    sessionStorage.removeItem(TOKEN);
    sessionStorage.removeItem(WHO);
  },
};

/** What the API refused, as its error body says: `code`, `message`, and the `ref_id` to quote. */
export class ApiError extends Error {
  constructor(status, code, message, refId) {
    super(message);
    this.status = status;
    this.code = code;
    this.refId = refId;
  }
}

/** Called when the server no longer accepts the token (expired, revoked). */
let onExpired = () => {};
export function whenExpired(handler) { onExpired = handler; }

/**
 * One API call; the JSON answer and its headers, or an `ApiError`. `token` tries a token not
 * yet kept (a refusal then is the caller's to show, not an expired session).
 */
export async function call(method, path, body, { form = false, signal, auth = true, token } = {}) {
  const headers = { Accept: "application/json" };
  const bearer = token ?? (auth ? session.token : null);
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  let payload;
  if (form) {
    headers["Content-Type"] = "application/x-www-form-urlencoded";
    payload = new URLSearchParams(body).toString();
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "UNREACHABLE", "The Flex server cannot be reached.", "");
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    const error = new ApiError(
      response.status,
      data?.code || `HTTP_${response.status}`,
      data?.message || response.statusText || "The request failed.",
      data?.ref_id || response.headers.get("hs-ref-id") || "",
    );
    if (response.status === 401 && token === undefined && auth && session.token) {
      session.end();
      onExpired(error);
    }
    throw error;
  }
  return { data, headers: response.headers };
}

export const get = async (path, options) => (await call("GET", path, undefined, options)).data;
export const post = async (path, body, options) => (await call("POST", path, body, options)).data;
export const patch = async (path, body) => (await call("PATCH", path, body)).data;
export const del = async (path, body) => (await call("DELETE", path, body)).data;

/** An error as the user reads it: code, message, and the ref id to quote to an administrator. */
export function errorBox(err) {
  if (!(err instanceof ApiError)) {
    return h("div", { class: "error", role: "alert" }, String(err?.message || err));
  }
  return h("div", { class: "error", role: "alert" },
    h("strong", { class: "code" }, err.code), " ", err.message,
    err.refId ? h("span", { class: "ref" }, " (ref id ", h("code", {}, err.refId), ")") : null);
}
