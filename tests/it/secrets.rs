//! No token Flex hands out, and no password it is given, ever reaches its log: the real
//! binary at its most verbose (`FLEX_LOG=trace`), through every use of a secret the security
//! features have (admin, app tokens of each role, refused roles, login sessions, failed and
//! throttled logins, host tokens on the API and on the agent socket, revoked and bogus
//! tokens), and then the whole log is searched for each.

use std::time::Duration;

use flex::emulators::agent::{AgentEmulator, AgentEmulatorConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{
    ADMIN_TOKEN, Backend, TestDb,
    processes::{FlexServe, free_port, http_client, register_host, wait_ready},
};

const PASSWORD: &str = "pw-Secret-4711";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_or_password_is_ever_logged() {
    crate::support::init_tracing();
    let db = TestDb::new(Backend::Sqlite).await;
    let port = free_port();
    let log_path = std::env::temp_dir().join(format!("flex-secrets-{}.log", uuid::Uuid::new_v4()));
    let process = FlexServe::new(port, &db.url)
        .env("FLEX_LOG", "trace")
        .env("FLEX_ADMIN_USER", "admin")
        .env("FLEX_ADMIN_PASSWORD", PASSWORD)
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn();
    let http = http_client();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&http, &base).await;
    let mut secrets = vec![ADMIN_TOKEN.to_owned(), PASSWORD.to_owned()];

    let host_token = register_host(&http, &base, "host01").await;
    secrets.push(host_token.clone());
    let on_api = http
        .get(format!("{base}/api/v1/hosts"))
        .bearer_auth(&host_token)
        .send()
        .await
        .unwrap();
    assert_eq!(on_api.status(), StatusCode::FORBIDDEN);
    let mut agent_config = AgentEmulatorConfig::new(&base, "host01", &host_token);
    agent_config.reconnect_delay = Duration::from_millis(100);
    let agent = AgentEmulator::start(agent_config).await.unwrap();

    for role in ["viewer", "operator", "admin"] {
        let created: Value = http
            .post(format!("{base}/api/v2/flex_app_tokens"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"app_name": format!("ci-{role}"), "role": role}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = created["token"].as_str().unwrap().to_owned();
        secrets.push(token.clone());
        for (method, path) in [
            (reqwest::Method::GET, "/api/v1/hosts"),
            (reqwest::Method::DELETE, "/api/v1/hosts/host02"),
            (reqwest::Method::GET, "/api/v1/audit"),
        ] {
            http.request(method, format!("{base}{path}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
        }
        let id = created["id"].as_str().unwrap();
        http.delete(format!("{base}/api/v2/flex_app_tokens/{id}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        let revoked = http
            .get(format!("{base}/api/v1/hosts"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), StatusCode::UNAUTHORIZED);
    }

    let login = |password: String| {
        http.post(format!("{base}/api/v1/auth/local/login"))
            .form(&[("username", "admin".to_owned()), ("password", password)])
            .send()
    };
    let session: Value = login(PASSWORD.to_owned())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = session["access_token"].as_str().unwrap().to_owned();
    secrets.push(session.clone());
    http.get(format!("{base}/api/echo/v1/topology"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    for attempt in 0..7 {
        let wrong = format!("{PASSWORD}-wrong-{attempt}");
        secrets.push(wrong.clone());
        login(wrong).await.unwrap();
    }
    let bogus = "fx_AAAAAAAAAAAAAAAAAAAA_notatokenatall";
    secrets.push(bogus.to_owned());
    http.get(format!("{base}/api/v1/hosts"))
        .bearer_auth(bogus)
        .send()
        .await
        .unwrap();

    agent.stop();
    drop(process);
    let log = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    assert!(
        log.lines().count() > 50 && log.contains("served"),
        "the log was written: {} lines",
        log.lines().count()
    );
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a secret handed to or by Flex is in its log"
        );
        // Nor its secret half alone (after the id), should a token be logged split.
        if let Some((_, tail)) = secret.rsplit_once('_') {
            assert!(
                tail.len() < 16 || !log.contains(tail),
                "part of a token is in the log"
            );
        }
    }
}
