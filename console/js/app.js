// The console's entry point: signs in, routes between the estate and the tasks (`#/…`), and
// reloads the view on screen when the server announces a change.

import { session, whenExpired } from "./api.js";
import { debounce } from "./dom.js";
import { renderEstate } from "./estate.js";
import * as live from "./live.js";
import { renderSignIn } from "./signin.js";
import { renderTask, renderTasks } from "./tasks.js";

const main = document.getElementById("main");
const bar = document.getElementById("bar");
let reloadView = null;

function signIn(reason) {
  live.stop();
  bar.hidden = true;
  reloadView = null;
  renderSignIn(main, { reason, onSignedIn: () => {
    // A new hash routes by itself (hashchange); the same one needs a nudge.
    if (location.hash.length > 1) route();
    else location.hash = "#/estate";
  } });
}

function route() {
  if (!session.token) { signIn(); return; }
  bar.hidden = false;
  document.getElementById("who").textContent = session.who;
  if (live.liveState() === "offline") live.start();
  const path = location.hash.replace(/^#/, "") || "/estate";
  const [, section, id] = path.split("/");
  for (const link of bar.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (section === "tasks" && id) {
    reloadView = renderTask(main, decodeURIComponent(id));
    document.title = "Task · Flex";
  } else if (section === "tasks") {
    reloadView = renderTasks(main);
    document.title = "Tasks · Flex";
  } else {
    reloadView = renderEstate(main);
    document.title = "Estate · Flex";
  }
  main.focus({ preventScroll: true });
}

const refresh = debounce(() => {
  // A form open over the view keeps what the user is filling in.
  if (reloadView && !document.getElementById("dialog").open) reloadView();
}, 300);

live.onChange(() => refresh());
whenExpired(() => signIn("Your session has expired or its token was revoked: sign in again."));
document.getElementById("sign-out").addEventListener("click", () => {
  session.end();
  signIn("Signed out.");
});
document.getElementById("dialog").addEventListener("close", (event) => {
  // A closed form leaves nothing behind for the next one to be confused with.
  event.target.replaceChildren();
  refresh();
});
window.addEventListener("hashchange", route);
route();
