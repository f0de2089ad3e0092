//! Topology in the shape of the real Flex's response, on both of its paths.

use serde_json::{Value, json};

use crate::{
    support::builders::database,
    support::{Backend, TestServer},
};

async fn topology_lists_hosts_and_their_databases(backend: Backend) {
    let server = TestServer::start(backend).await;
    for path in ["/api/ocie/v1/topology", "/api/echo/v1/topology"] {
        let empty = server.get(path).await;
        assert_eq!(empty.status(), 200);
        assert_eq!(empty.json::<Value>().await.unwrap(), json!([]));
    }
    server.register_host("echo02").await;
    server.register_host("echo01").await;
    let store = server.db.store().await;
    store
        .replace_databases(
            "echo02",
            &[
                database("echo02", "2", "tempdb"),
                database("echo02", "5", "sales"),
            ],
        )
        .await
        .unwrap();

    // A topology response captured from a production Flex (docs/reference).
    let example: Value =
        serde_json::from_str(include_str!("../fixtures/topology-example.json")).unwrap();
    for path in ["/api/ocie/v1/topology", "/api/echo/v1/topology"] {
        let topology: Value = server.get(path).await.json().await.unwrap();
        let entries = topology.as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0]["host"]["id"], "echo01");
        assert_eq!(entries[1]["host"]["id"], "echo02");
        // Every field of the captured response is present, with the same JSON type.
        assert_same_keys(&example[1]["host"], &entries[1]["host"], "host");
        assert_same_keys(
            &example[1]["databases"][0],
            &entries[1]["databases"][0],
            "database",
        );
        assert_same_keys(
            &example[1]["databases"][0]["files"][0],
            &entries[1]["databases"][0]["files"][0],
            "file",
        );
        assert_eq!(entries[0]["databases"], json!([]));
        let dbs = entries[1]["databases"].as_array().unwrap();
        assert_eq!(
            dbs.iter()
                .map(|d| d["name"].as_str().unwrap())
                .collect::<Vec<_>>(),
            ["sales", "tempdb"]
        );
        let file = &dbs[0]["files"][0];
        assert_eq!(
            file["volume_scsi_sn"], "1344090006",
            "joined by mount point"
        );
        assert_eq!(dbs[0]["db_snapshots"], json!([]));
        assert_eq!(dbs[0]["parent"], Value::Null);
        // No agent connected yet: no snapshot, and the reason says why.
        assert_eq!(dbs[0]["db_snapshot_allowed"], false);
        assert!(
            dbs[0]["db_snapshot_disallowed_reason"]
                .as_str()
                .unwrap()
                .contains("not connected")
        );
    }
}

fn assert_same_keys(expected: &Value, actual: &Value, what: &str) {
    let expected = expected.as_object().expect("example object");
    let actual = actual
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not an object"));
    for (key, value) in expected {
        let got = actual
            .get(key)
            .unwrap_or_else(|| panic!("{what} lacks '{key}': {actual:?}"));
        let same_type = std::mem::discriminant(value) == std::mem::discriminant(got)
            || (value.is_number() && got.is_null())
            || (value.is_string() && got.is_null());
        assert!(same_type, "{what}.{key}: expected like {value}, got {got}");
    }
}

/// Paging and search are opt-in: a console can show a large estate a page at a time.
async fn topology_pages_and_searches_on_request(backend: Backend) {
    let server = TestServer::start(backend).await;
    for host in ["web-03", "db-01", "web-01", "db-02", "web-02"] {
        server.register_host(host).await;
    }
    let store = server.db.store().await;
    store
        .replace_databases("db-02", &[database("db-02", "5", "Payroll")])
        .await
        .unwrap();
    let ids = |body: &Value| -> Vec<String> {
        body.as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["host"]["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let page = |query: &'static str| {
        let server = &server;
        async move {
            let answer = server.get(&format!("/api/echo/v1/topology{query}")).await;
            assert_eq!(answer.status(), 200, "{query}");
            let total = answer.headers()["x-total-count"]
                .to_str()
                .unwrap()
                .to_owned();
            (answer.json::<Value>().await.unwrap(), total)
        }
    };
    let (all, total) = page("").await;
    assert_eq!(ids(&all), ["db-01", "db-02", "web-01", "web-02", "web-03"]);
    assert_eq!(total, "5");
    let (first, total) = page("?limit=2").await;
    assert_eq!(ids(&first), ["db-01", "db-02"]);
    assert_eq!(total, "5", "the count ignores the page");
    let (next, _) = page("?limit=2&after=db-02").await;
    assert_eq!(ids(&next), ["web-01", "web-02"]);
    let (last, _) = page("?limit=2&after=web-02").await;
    assert_eq!(ids(&last), ["web-03"]);
    // By host id or name, or by a database's name, in any case.
    let (web, total) = page("?q=WEB").await;
    assert_eq!((ids(&web).len(), total.as_str()), (3, "3"));
    let (payroll, total) = page("?q=payroll").await;
    assert_eq!(
        (ids(&payroll), total.as_str()),
        (vec!["db-02".to_owned()], "1")
    );
    let (none, total) = page("?q=nothing-like-it").await;
    assert_eq!((ids(&none).len(), total.as_str()), (0, "0"));
    for bad in ["?limit=0", "?limit=1001", "?limit=many"] {
        let answer = server.get(&format!("/api/echo/v1/topology{bad}")).await;
        assert_eq!(answer.status(), 400, "{bad}");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["code"], "INVALID_QUERY", "{bad}: {body}");
    }
}

/// A page is read host by host, the whole estate table by table: they must say the same.
async fn a_page_of_the_topology_is_that_slice_of_the_whole(backend: Backend) {
    let server = TestServer::start(backend).await;
    let store = server.db.store().await;
    crate::support::builders::seed_estate(&store, 5, 3, 2).await;
    let read = |query: &'static str| {
        let server = &server;
        async move {
            let answer = server.get(&format!("/api/echo/v1/topology{query}")).await;
            assert_eq!(answer.status(), 200, "{query}");
            answer.json::<Value>().await.unwrap()
        }
    };
    // Before any whole topology: the page renders its own hosts' rows.
    let cold = read("?limit=2&after=host0000").await;
    let whole = read("").await;
    let whole = whole.as_array().unwrap();
    assert_eq!(cold.as_array().unwrap().as_slice(), &whole[1..3]);
    assert_eq!(whole.len(), 5);
    assert_eq!(whole[1]["databases"].as_array().unwrap().len(), 3);
    assert_eq!(
        whole[1]["databases"][0]["db_snapshots"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let page = read("?limit=2&after=host0000").await;
    assert_eq!(page.as_array().unwrap().as_slice(), &whole[1..3]);
    let found = read("?q=DB2&limit=10").await;
    assert_eq!(
        found.as_array().unwrap().as_slice(),
        whole,
        "every host has a db2"
    );
}

/// The topology keeps its databases rendered: a change committed anywhere (here, straight
/// into the shared database, as another replica would) shows in the very next answer, and
/// what moves with the clock (whether an agent is connected) moves without any change.
async fn a_kept_topology_shows_every_change_at_once(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.agent_silence = std::time::Duration::from_secs(1);
    })
    .await;
    let store = server.db.store().await;
    crate::support::builders::seed_estate(&store, 2, 1, 1).await;
    let read = || async {
        let answer = server.get("/api/echo/v1/topology").await;
        assert_eq!(answer.status(), 200);
        answer.json::<Value>().await.unwrap()
    };
    let names = |topology: &Value| -> Vec<String> {
        topology[1]["databases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|db| db["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&read().await), ["db0"]);
    let kept = server.get("/api/echo/v1/topology").await;
    let length: usize = kept.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let kept = kept.bytes().await.unwrap();
    assert_eq!(length, kept.len(), "sent in pieces, with its length");
    assert_eq!(
        names(&serde_json::from_slice(&kept).unwrap()),
        ["db0"],
        "served as kept"
    );

    store
        .replace_databases(
            "host0001",
            &[
                database("host0001", "5", "db0"),
                database("host0001", "7", "hr"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(names(&read().await), ["db0", "hr"]);
    assert!(
        store
            .delete_db_snapshot_row("snap_0001_0", "t1")
            .await
            .unwrap()
    );
    assert_eq!(read().await[1]["databases"][0]["db_snapshots"], json!([]));

    // An agent says hello (a host row only): its databases may be snapshotted at once...
    let facts = flex::store::AgentFacts {
        host_name: "host0001".into(),
        host_iqn: "iqn.1991-05.com.microsoft:host0001".into(),
        host_os: "windows".into(),
        host_os_version: "2022".into(),
        agent_version: "1.0".into(),
        cloud_vendor: "azure".into(),
        db_engine_version: "16.0".into(),
        facts: flex::model::HostFacts::default(),
    };
    assert!(
        store
            .record_agent_hello("host0001", "elsewhere", &facts)
            .await
            .unwrap()
    );
    let topology = read().await;
    assert_eq!(topology[1]["host"]["is_connected"], true);
    assert_eq!(topology[1]["databases"][0]["db_snapshot_allowed"], true);
    assert_eq!(
        topology[1]["databases"][0]["db_snapshot_disallowed_reason"],
        ""
    );
    assert_eq!(topology[0]["databases"][0]["db_snapshot_allowed"], false);
    // ...and not once it has been silent for longer than `agent_silence`.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let topology = read().await;
    assert_eq!(topology[1]["host"]["is_connected"], false);
    assert_eq!(topology[1]["databases"][0]["db_snapshot_allowed"], false);
    assert_eq!(
        topology[1]["databases"][0]["db_snapshot_disallowed_reason"],
        "the agent of host 'host0001' is not connected"
    );
}

crate::on_both_backends!(
    a_kept_topology_shows_every_change_at_once,
    topology_lists_hosts_and_their_databases,
    topology_pages_and_searches_on_request,
    a_page_of_the_topology_is_that_slice_of_the_whole
);
