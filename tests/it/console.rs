//! The web console in a real browser (headless Chromium over WebDriver): against `flex demo`
//! as a user would use it, and against a thousand hosts for what a large estate costs. Each
//! prints what its first load transferred and how soon the estate showed.

mod browser;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use reqwest::StatusCode;

use crate::support::processes::{
    ADMIN_TOKEN, FlexServe, Process, free_port, http_client, wait_ready,
};
use browser::Browser;

const PASSWORD: &str = "console-walkthrough-pw";

/// `flex demo` on free ports with a known password: the process, its URL, its SDP emulator's
/// URL, and the first line it printed.
async fn demo() -> (Process, String, String, String) {
    crate::support::init_tracing();
    let (port, sdp_port) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_flex"))
        .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--sdp-listen", &format!("127.0.0.1:{sdp_port}")])
        .args(["--admin-user", "demo", "--admin-password", PASSWORD])
        .env_remove("FLEX_ADMIN_TOKEN")
        .env("FLEX_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let first_line = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        let first = lines
            .find(|line| !line.trim().is_empty())
            .unwrap_or_default();
        // Keep reading so the demo never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        first
    });
    let process = Process(child);
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&http_client(), &base).await;
    let sdp = format!("http://127.0.0.1:{sdp_port}");
    (process, base, sdp, first_line.await.unwrap())
}

/// Opens the clone form for src-01's sales and fills in one destination.
async fn clone_sales_to(browser: &Browser, host: &str, name: &str) {
    browser
        .click(r#"button[aria-label="Clone sales from src-01"]"#)
        .await;
    let destination = "#clone-destinations .destination";
    browser.choose(&format!("{destination} select"), host).await;
    browser
        .type_into(&format!("{destination} .dest-name"), name)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dba_clones_refreshes_and_deletes_through_the_console() {
    let (_demo, base, sdp, first_line) = demo().await;
    assert!(
        first_line.contains(&format!("{base}/ui/")) && first_line.contains("demo"),
        "the demo prints the console and its user first: {first_line}"
    );
    // A browser asking for `/` is sent to the console; an API client is not.
    let http = http_client();
    let api_root = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(api_root.status(), StatusCode::NOT_FOUND);
    let page = http.get(format!("{base}/ui/")).send().await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );

    let browser = Browser::start().await;
    browser.goto(&format!("{base}/")).await;
    browser.find("#login-form").await;
    let url = browser.client.current_url().await.unwrap();
    assert!(
        url.path().starts_with("/ui/"),
        "redirected to the console: {url}"
    );

    // A refused login shows the API's code and message, and the ref id to quote.
    browser.type_into("#username", "demo").await;
    browser.type_into("#password", "not-the-password").await;
    browser.click("#login-form button[type=submit]").await;
    let refusal = browser.text_of(".form-status .error", "UNAUTHORIZED").await;
    assert!(refusal.contains("ref id"), "{refusal}");

    browser.type_into("#password", PASSWORD).await;
    browser.click("#login-form button[type=submit]").await;
    browser
        .find(r#"section[data-host="src-01"] tr[data-db="sales"]"#)
        .await;
    browser.find(r#"section[data-host="dev-01"]"#).await;
    let (bytes, paint, _) = browser.first_load().await;
    let (reload_bytes, estate) = browser
        .reload_estate(r#"section[data-host="src-01"]"#)
        .await;
    println!(
        "console, demo (3 hosts): first load {bytes} bytes transferred (sign-in page, assets, \
         login, estate), first paint {paint:.0} ms; signed in, a reload shows the estate \
         {estate:.0} ms after navigation ({reload_bytes} bytes)"
    );
    assert!(bytes > 0 && estate > 0.0, "the figures were measured");
    // Anything the Content-Security-Policy blocks from here on is counted.
    browser
        .script(
            "window.cspViolations = []; document.addEventListener('securitypolicyviolation', \
             (e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI)); \
             return null",
        )
        .await;

    let token_kept: String = serde_json::from_value(
        browser
            .script("return sessionStorage.getItem('flex.token') || ''")
            .await,
    )
    .unwrap();
    assert!(
        token_kept.starts_with("fx"),
        "the session token is in session storage"
    );
    let local: u64 =
        serde_json::from_value(browser.script("return localStorage.length").await).unwrap();
    assert_eq!(local, 0, "and nowhere that outlives the tab");

    // Clone sales onto dev-01 through the form: the dry run first, then the task.
    clone_sales_to(&browser, "dev-01", "sales_qa").await;
    browser.text_of("#dry-run", "Dry run passed").await;
    browser.screenshot("console-clone-form.png").await;
    browser.click("#confirm").await;
    browser.text_of("#task-title", "completed").await;
    let result = browser.text_of("#task-result", "dev-01/sales_qa").await;
    assert!(result.contains("src-01/sales"), "{result}");
    let steps = browser.text_of("table.steps", "attach").await;
    assert!(
        steps.contains("freeze databases"),
        "each step is listed: {steps}"
    );
    let frozen = browser
        .text_of("#task-frozen", "Databases frozen for")
        .await;
    assert!(frozen.contains("ms") || frozen.contains(" s "), "{frozen}");
    browser.screenshot("console-task.png").await;

    // The new echo DB is on the estate, with its parent.
    browser.goto(&format!("{base}/ui/#/estate")).await;
    let echo_row = r#"section[data-host="dev-01"] tr[data-db="sales_qa"]"#;
    let lineage = browser.text_of(echo_row, "from src-01").await;
    assert!(lineage.contains("echo DB"), "{lineage}");
    browser
        .find(r#"section[data-host="src-01"] li[data-snapshot]"#)
        .await;
    browser.screenshot("console-estate.png").await;

    // The same name again: the dry run says why it cannot work, with the API's code.
    clone_sales_to(&browser, "dev-01", "sales_qa").await;
    browser.text_of("#dry-run", "DB_NAME_IS_IN_USE").await;
    let confirm = browser.find("#confirm").await;
    assert!(!confirm.is_enabled().await.unwrap(), "nothing to confirm");
    browser.click("#dialog button[value=cancel]").await;

    // A newer snapshot of sales, then refresh the echo DB from it.
    browser
        .click(r#"button[aria-label="Snapshot sales on src-01"]"#)
        .await;
    browser.text_of("#dry-run", "Dry run passed").await;
    browser.click("#confirm").await;
    browser.text_of("#task-title", "completed").await;
    browser.goto(&format!("{base}/ui/#/estate")).await;
    browser
        .click(r#"button[aria-label="Refresh sales_qa on dev-01"]"#)
        .await;
    browser.text_of("#dry-run", "Dry run passed").await;
    browser.click("#confirm").await;
    let refreshed = browser.text_of("#task-title", "completed").await;
    assert!(refreshed.contains("refresh"), "{refreshed}");

    // Lifecycle: an expiry, a keep-alive, protection (which the delete's dry run then refuses).
    let lifecycle = r#"button[aria-label="Expiry and protection of sales_qa"]"#;
    browser.goto(&format!("{base}/ui/#/estate")).await;
    browser.click(lifecycle).await;
    browser.type_into("#lifecycle-ttl", "2").await;
    browser.click("#set-ttl").await;
    browser.text_of(echo_row, "expires in 2 h").await;
    browser.click(lifecycle).await;
    browser.click("#keep-alive").await;
    browser.text_of("#toasts", "Kept alive").await;
    browser.click(lifecycle).await;
    browser.click("#toggle-protect").await;
    browser.text_of(echo_row, "protected").await;
    browser
        .click(r#"button[aria-label="Delete sales_qa on dev-01"]"#)
        .await;
    browser.text_of("#dry-run", "ECHO_DB_PROTECTED").await;
    browser.click("#dialog button[value=cancel]").await;
    browser.click(lifecycle).await;
    browser
        .text_of("#toggle-protect", "Remove protection")
        .await;
    browser.click("#toggle-protect").await;
    browser.text_of("#toasts", "Protection removed").await;

    // Delete it: the confirmation names what goes.
    browser.goto(&format!("{base}/ui/#/estate")).await;
    browser
        .click(r#"button[aria-label="Delete sales_qa on dev-01"]"#)
        .await;
    let goes = browser.text_of("#dialog .goes", "sales_qa on dev-01").await;
    assert!(goes.contains("thin clones"), "{goes}");
    browser.text_of("#dry-run", "Dry run passed").await;
    browser.click("#confirm").await;
    browser.text_of("#task-title", "completed").await;

    // With its echo DB gone, a snapshot of sales can go too.
    browser.goto(&format!("{base}/ui/#/estate")).await;
    let snapshots = r#"section[data-host="src-01"] li[data-snapshot]"#;
    // The estate draws all of a host at once: once one snapshot shows, both do.
    browser.find(snapshots).await;
    let before = browser
        .client
        .find_all(fantoccini::Locator::Css(snapshots))
        .await
        .unwrap()
        .len();
    assert_eq!(before, 2, "the clone's snapshot and the newer one");
    browser.click(&format!("{snapshots} button.danger")).await;
    browser
        .text_of("#dialog .goes", "volume group snapshots")
        .await;
    browser.text_of("#dry-run", "Dry run passed").await;
    browser.click("#confirm").await;
    let deleted = browser.text_of("#task-title", "completed").await;
    assert!(deleted.contains("delete snapshot"), "{deleted}");

    // On a slow array, a clone followed step by step, then aborted: its steps are undone.
    let latency = |ms: u64| {
        http.put(format!("{sdp}/emulator/latency"))
            .basic_auth("admin", Some("admin"))
            .json(&serde_json::json!({ "ms": ms }))
            .send()
    };
    assert!(latency(400).await.unwrap().status().is_success());
    browser.goto(&format!("{base}/ui/#/estate")).await;
    clone_sales_to(&browser, "dev-02", "sales_abandoned").await;
    browser.text_of("#dry-run", "Dry run passed").await;
    browser.click("#confirm").await;
    browser.text_of("#task-title", "running").await;
    // Steps are shown done as they finish, without a reload.
    browser
        .text_of(r#"tr[data-step="freeze_databases"]"#, "completed")
        .await;
    browser.text_of("#task-title", "running").await;
    browser.click("#abort").await;
    browser.text_of("#task-title", "aborted").await;
    assert!(latency(0).await.unwrap().status().is_success());
    browser.goto(&format!("{base}/ui/#/estate")).await;
    browser.find(r#"section[data-host="dev-02"]"#).await;
    browser.gone(r#"tr[data-db="sales_abandoned"]"#).await;

    // The task list has them all, newest first.
    browser.goto(&format!("{base}/ui/#/tasks")).await;
    let list = browser.text_of("table.tasks", "delete echo DB").await;
    assert!(list.contains("aborted"), "{list}");
    for command in ["clone", "snapshot", "refresh", "delete snapshot"] {
        assert!(list.contains(command), "{command} is listed: {list}");
    }
    browser.goto(&format!("{base}/ui/#/estate")).await;
    browser.find(r#"section[data-host="dev-01"]"#).await;
    browser.gone(echo_row).await;

    // A token the server no longer accepts sends the user back to sign in, saying why.
    browser
        .script("sessionStorage.setItem('flex.token', 'fx_revoked_or_expired'); return null")
        .await;
    browser.goto(&format!("{base}/ui/#/tasks")).await;
    browser.text_of(".signin .notice", "sign in again").await;
    let blocked = browser.script("return window.cspViolations").await;
    assert_eq!(
        blocked,
        serde_json::json!([]),
        "nothing the policy had to block"
    );
    browser.close().await;
}

/// A thousand hosts × 10 databases × 10 snapshots: the estate shows a page of them, pages on,
/// and finds one host by name; the first load costs one page, not the whole topology.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_pages_a_thousand_hosts() {
    let db = crate::support::TestDb::new(crate::support::Backend::Sqlite).await;
    crate::support::builders::seed_estate(&db.store().await, 1000, 10, 10).await;
    let port = free_port();
    let _serve = FlexServe::new(port, &db.url).silent().spawn();
    let base = format!("http://127.0.0.1:{port}");
    let http = http_client();
    wait_ready(&http, &base).await;
    let whole = http
        .get(format!("{base}/api/echo/v1/topology"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len();

    let browser = Browser::start().await;
    browser.goto(&format!("{base}/ui/")).await;
    browser.type_into("#token", ADMIN_TOKEN).await;
    browser.click("#token-form button[type=submit]").await;
    browser.find(r#"section[data-host="host0000"]"#).await;
    let count = browser.text_of("#estate-count", "of 1000").await;
    assert!(count.contains("Hosts 1–20"), "{count}");
    let (bytes, paint, _) = browser.first_load().await;
    let (reload_bytes, estate) = browser
        .reload_estate(r#"section[data-host="host0000"]"#)
        .await;
    println!(
        "console, 1,000 hosts × 10 DBs × 10 snapshots: first load {bytes} bytes transferred \
         (the whole topology is {whole} bytes), first paint {paint:.0} ms; a reload shows the \
         estate {estate:.0} ms after navigation ({reload_bytes} bytes)"
    );
    assert!(
        bytes < u64::try_from(whole).unwrap() / 10,
        "the first load fetched a page, not the estate: {bytes} of {whole} bytes"
    );
    browser.click(".pager button:last-child").await;
    browser.find(r#"section[data-host="host0020"]"#).await;
    browser
        .text_of("#estate-count", "Hosts 21–40 of 1000")
        .await;
    browser.type_into("#estate-search", "host0999").await;
    browser.text_of("#estate-count", "Hosts 1–1 of 1").await;
    browser.find(r#"section[data-host="host0999"]"#).await;
    browser.close().await;
}
