// Signing in: with a user name and password (the login endpoint), or by pasting an API token,
// which is checked against the server before it is kept.

import { call, errorBox, session } from "./api.js";
import { fill, h } from "./dom.js";

export function renderSignIn(main, { reason, onSignedIn }) {
  const status = h("div", { class: "form-status", "aria-live": "polite" });
  const user = h("input", { id: "username", name: "username", autocomplete: "username", required: true });
  const password = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const token = h("textarea", { id: "token", name: "token", rows: 2, spellcheck: "false", required: true });

  const byPassword = h("form", { class: "card", id: "login-form", onsubmit: async (event) => {
    event.preventDefault();
    fill(status, "Signing in…");
    try {
      const { data } = await call("POST", "/api/v1/auth/local/login",
        { username: user.value, password: password.value }, { form: true, auth: false });
      session.start(data.access_token, user.value);
      onSignedIn();
    } catch (err) {
      fill(status, errorBox(err));
    }
  } },
  h("h2", {}, "User name and password"),
  h("label", { for: "username" }, "User name"), user,
  h("label", { for: "password" }, "Password"), password,
  h("button", { type: "submit", class: "primary" }, "Sign in"));

  const byToken = h("form", { class: "card", id: "token-form", onsubmit: async (event) => {
    event.preventDefault();
    fill(status, "Checking the token…");
    const pasted = token.value.trim();
    try {
      await call("GET", "/api/v2/flex/info", undefined, { token: pasted });
      session.start(pasted, "API token");
      onSignedIn();
    } catch (err) {
      fill(status, errorBox(err));
    }
  } },
  h("h2", {}, "API token"),
  h("label", { for: "token" }, "Token (kept in this tab only)"), token,
  h("button", { type: "submit" }, "Use token"));

  fill(main,
    h("section", { class: "signin", "aria-labelledby": "signin-title" },
      h("h1", { id: "signin-title" }, "Sign in to Flex"),
      reason ? h("p", { class: "notice", role: "alert" }, reason) : null,
      h("div", { class: "signin-forms" }, byPassword, byToken),
      status));
  user.focus();
}
