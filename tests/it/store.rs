//! Store conformance: the same expectations of `Store`, run on SQLite and on Postgres.

use flex::{
    auth::{self, TokenSpec},
    model::{CommandType, LedgerKind, TaskState},
    store::{
        Claim, DeleteHostOutcome, NewTask, Shared, StoreError, TaskFilter, TaskRecord, TokenKind,
    },
};

use crate::support::{
    Backend, TestDb,
    builders::{database, host_token, new_host, task},
};

async fn migrations_are_idempotent_and_ready(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = flex::store::Store::connect(&db.url).await.unwrap();
    assert!(
        !store.is_ready().await.unwrap(),
        "not ready before migrating"
    );
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    assert!(store.is_ready().await.unwrap());
}

async fn hosts_register_once_with_their_token(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let token = host_token("host01");
    let host = store
        .insert_host(&new_host("host01"), &token.record)
        .await
        .unwrap();
    assert_eq!(host.host_id, "host01");
    assert_eq!(host.db_vendor, "mssql");
    assert_eq!(host.last_seen_ts, host.created_ts);
    assert_eq!(host.connected_by, None);

    let again = host_token("host01");
    match store.insert_host(&new_host("host01"), &again.record).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    // The refused registration left no token behind.
    assert_eq!(store.find_token(&again.record.id).await.unwrap(), None);
    let stored = store.find_token(&token.record.id).await.unwrap().unwrap();
    assert_eq!(stored.kind, TokenKind::Host);
    assert_eq!(stored.host_id.as_deref(), Some("host01"));
    assert_ne!(
        stored.token_hash, token.plaintext,
        "only the hash is stored"
    );

    assert_eq!(store.get_host("host01").await.unwrap(), Some(host));
    assert_eq!(store.get_host("nope").await.unwrap(), None);
}

async fn hosts_list_in_id_order(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    assert!(store.list_hosts().await.unwrap().is_empty());
    for id in ["zeta", "alpha", "mid"] {
        store
            .insert_host(&new_host(id), &host_token(id).record)
            .await
            .unwrap();
    }
    let ids: Vec<String> = store
        .list_hosts()
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.host_id)
        .collect();
    assert_eq!(ids, ["alpha", "mid", "zeta"]);
}

async fn deleting_a_host_removes_its_token_and_inventory(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let token = host_token("host01");
    store
        .insert_host(&new_host("host01"), &token.record)
        .await
        .unwrap();
    assert!(
        store
            .replace_databases("host01", &[database("host01", "5", "sales")])
            .await
            .unwrap()
    );
    assert_eq!(
        store.delete_host("host01").await.unwrap(),
        DeleteHostOutcome::Deleted
    );
    assert_eq!(store.get_host("host01").await.unwrap(), None);
    assert_eq!(store.find_token(&token.record.id).await.unwrap(), None);
    assert!(store.list_all_databases().await.unwrap().is_empty());
    assert_eq!(
        store.delete_host("host01").await.unwrap(),
        DeleteHostOutcome::NotFound
    );
}

async fn a_running_task_keeps_its_host(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    store
        .insert_host(&new_host("host01"), &host_token("host01").record)
        .await
        .unwrap();
    store
        .insert_task(&NewTask {
            record: task(
                "t-done",
                TaskState::Completed,
                CommandType::CreateDbSnapshot,
                "ref1",
            ),
            host_ids: vec!["host01".into()],
        })
        .await
        .unwrap();
    store
        .insert_task(&NewTask {
            record: task(
                "t-run",
                TaskState::Running,
                CommandType::CreateClone,
                "ref2",
            ),
            host_ids: vec!["host01".into(), "host02".into()],
        })
        .await
        .unwrap();
    assert_eq!(
        store.delete_host("host01").await.unwrap(),
        DeleteHostOutcome::Busy(vec!["t-run".into()])
    );
    assert!(store.get_host("host01").await.unwrap().is_some());
}

async fn inventory_replaces_the_whole_list(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    store
        .insert_host(&new_host("host01"), &host_token("host01").record)
        .await
        .unwrap();
    store
        .insert_host(&new_host("host02"), &host_token("host02").record)
        .await
        .unwrap();
    let first = [
        database("host01", "5", "sales"),
        database("host01", "6", "hr"),
    ];
    assert!(store.replace_databases("host01", &first).await.unwrap());
    assert!(
        store
            .replace_databases("host02", &[database("host02", "5", "other")])
            .await
            .unwrap()
    );
    let listed = store.list_databases("host01").await.unwrap();
    assert_eq!(
        listed.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        ["hr", "sales"]
    );
    assert_eq!(listed[1], first[0]);

    let second = [database("host01", "7", "finance")];
    assert!(store.replace_databases("host01", &second).await.unwrap());
    assert_eq!(store.list_databases("host01").await.unwrap(), second);
    assert_eq!(store.get_database("host01", "5").await.unwrap(), None);
    assert_eq!(
        store
            .get_database("host02", "5")
            .await
            .unwrap()
            .unwrap()
            .name,
        "other"
    );
    assert_eq!(store.list_all_databases().await.unwrap().len(), 2);

    assert!(
        !store
            .replace_databases("ghost", &[database("ghost", "1", "x")])
            .await
            .unwrap(),
        "no inventory for an unregistered host"
    );
    assert_eq!(store.list_databases("ghost").await.unwrap(), vec![]);
}

async fn tasks_round_trip_and_filter(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let mut done = task(
        "t1",
        TaskState::Completed,
        CommandType::CreateDbSnapshot,
        "refA",
    );
    done.result = Some(r#"{"db_snapshot":{"id":"snap_1"}}"#.to_owned());
    done.create_ts -= 10;
    let running = task("t2", TaskState::Running, CommandType::CreateClone, "refB");
    let mut failed = task("t3", TaskState::Failed, CommandType::CreateClone, "refA");
    "the SDP refused: quota".clone_into(&mut failed.error);
    failed.create_ts += 10;
    for record in [&running, &failed, &done] {
        store
            .insert_task(&NewTask {
                record: record.clone(),
                host_ids: vec![],
            })
            .await
            .unwrap();
    }
    assert_eq!(store.get_task("t1").await.unwrap(), Some(done.clone()));
    assert_eq!(store.get_task("missing").await.unwrap(), None);

    let ids = |tasks: Vec<TaskRecord>| tasks.into_iter().map(|t| t.request_id).collect::<Vec<_>>();
    let all = store.list_tasks(&TaskFilter::default()).await.unwrap();
    assert_eq!(ids(all), ["t1", "t2", "t3"], "oldest first");
    let by_ref = TaskFilter {
        ref_id: Some("refA".into()),
        ..Default::default()
    };
    assert_eq!(ids(store.list_tasks(&by_ref).await.unwrap()), ["t1", "t3"]);
    let clones_failed = TaskFilter {
        state: Some(TaskState::Failed),
        command_type: Some(CommandType::CreateClone),
        ..Default::default()
    };
    assert_eq!(ids(store.list_tasks(&clones_failed).await.unwrap()), ["t3"]);

    // Pages: newest first, each after the last of the one before.
    let any = TaskFilter::default();
    let page = |before: Option<&'static str>, limit: usize| {
        let (store, any) = (&store, &any);
        async move { ids(store.list_tasks_page(any, before, limit).await.unwrap()) }
    };
    assert_eq!(page(None, 2).await, ["t3", "t2"]);
    assert_eq!(page(Some("t2"), 2).await, ["t1"]);
    assert_eq!(page(Some("t1"), 2).await, Vec::<String>::new());
    assert_eq!(page(Some("nope"), 2).await, Vec::<String>::new());
    assert_eq!(page(None, 10).await, ["t3", "t2", "t1"]);
    let refs_a = store.list_tasks_page(&by_ref, None, 1).await.unwrap();
    assert_eq!(ids(refs_a), ["t3"], "filters hold on a page");

    let duplicate = store
        .insert_task(&NewTask {
            record: running.clone(),
            host_ids: vec![],
        })
        .await;
    assert!(matches!(duplicate, Err(StoreError::Conflict(_))));
}

async fn tokens_are_found_listed_and_revoked(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    assert!(!store.has_admin_token().await.unwrap());
    let generated = auth::bootstrap_admin_token(&store, None).await.unwrap();
    let generated = generated.expect("first start generates an admin token");
    assert!(store.has_admin_token().await.unwrap());
    assert_eq!(
        auth::bootstrap_admin_token(&store, None).await.unwrap(),
        None,
        "an existing admin token is kept and not shown again"
    );
    assert!(
        auth::authenticate(&store, &generated)
            .await
            .unwrap()
            .is_some()
    );

    // A configured admin token replaces the generated one.
    auth::bootstrap_admin_token(&store, Some("chosen-admin"))
        .await
        .unwrap();
    assert!(
        auth::authenticate(&store, &generated)
            .await
            .unwrap()
            .is_none()
    );
    let admin = auth::authenticate(&store, "chosen-admin").await.unwrap();
    assert_eq!(admin.unwrap().kind, TokenKind::Admin);

    let app = auth::mint(TokenSpec {
        kind: TokenKind::App,
        role: flex::store::Role::Admin,
        host_id: None,
        app_name: "pipeline",
        description: "nightly refresh",
        ttl: Some(3600),
    });
    store.insert_token(&app.record).await.unwrap();
    let expired = auth::mint(TokenSpec {
        kind: TokenKind::App,
        role: flex::store::Role::Admin,
        host_id: None,
        app_name: "old",
        description: "",
        ttl: Some(-1),
    });
    store.insert_token(&expired.record).await.unwrap();
    assert_eq!(store.list_app_tokens().await.unwrap().len(), 2);
    assert!(
        auth::authenticate(&store, &app.plaintext)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        auth::authenticate(&store, &expired.plaintext)
            .await
            .unwrap()
            .is_none(),
        "expired tokens do not authenticate"
    );
    // The right id with the wrong secret does not authenticate.
    let forged = format!("fx_{}_{}", app.record.id, "x".repeat(32));
    assert!(auth::authenticate(&store, &forged).await.unwrap().is_none());

    assert!(store.delete_app_token(&app.record.id).await.unwrap());
    assert!(!store.delete_app_token(&app.record.id).await.unwrap());
    assert!(
        auth::authenticate(&store, &app.plaintext)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !store.delete_app_token("admin").await.unwrap(),
        "the admin token is not an app token"
    );
}

async fn expired_sessions_are_purged(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    for ttl in [-5, 3600] {
        let session = auth::mint(TokenSpec {
            kind: TokenKind::Session,
            role: flex::store::Role::Admin,
            host_id: None,
            app_name: "login",
            description: "",
            ttl: Some(ttl),
        });
        store.insert_token(&session.record).await.unwrap();
    }
    assert_eq!(store.purge_expired_sessions().await.unwrap(), 1);
    assert_eq!(store.purge_expired_sessions().await.unwrap(), 0);
}

async fn concurrent_writers_all_land(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let mut writers = Vec::new();
    for n in 0..40 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let id = format!("host{n:02}");
            store
                .insert_host(&new_host(&id), &host_token(&id).record)
                .await
        }));
    }
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    assert_eq!(store.list_hosts().await.unwrap().len(), 40);
}

/// Writes that run at once (on SQLite they share one commit) each land or fail alone: of two
/// registrations of one host exactly one lands, the refused one leaves no token, and a write
/// abandoned half-way (its future dropped) is all there or not there at all, and holds up no
/// write after it.
async fn concurrent_writes_fail_and_are_abandoned_alone(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let mut writers = Vec::new();
    for n in 0..120 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let id = format!("host{:02}", n % 60);
            let token = host_token(&id);
            let outcome = store.insert_host(&new_host(&id), &token.record).await;
            (id, token.record.id, outcome)
        }));
    }
    let mut landed = std::collections::BTreeMap::new();
    for writer in writers {
        let (id, token_id, outcome) = writer.await.unwrap();
        match outcome {
            Ok(_) => assert!(
                landed.insert(id, token_id).is_none(),
                "one host, two landings"
            ),
            Err(StoreError::Conflict(_)) => {
                assert_eq!(store.find_token(&token_id).await.unwrap(), None, "{id}");
            }
            Err(other) => panic!("{id}: {other}"),
        }
    }
    assert_eq!(landed.len(), 60);
    for (id, token_id) in &landed {
        let token = store.find_token(token_id).await.unwrap().unwrap();
        assert_eq!(token.host_id.as_deref(), Some(id.as_str()));
    }

    // Abandoned at every point of their life: each is whole or absent, and nothing waits.
    let mut abandoned = Vec::new();
    for n in 0..40u64 {
        let store = store.clone();
        let id = format!("gone{n:02}");
        let token = host_token(&id);
        abandoned.push((id.clone(), token.record.id.clone()));
        tokio::spawn(async move {
            let host = new_host(&id);
            let write = store.insert_host(&host, &token.record);
            let _ = tokio::time::timeout(std::time::Duration::from_micros(n * 50), write).await;
        });
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let after = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        store.insert_host(&new_host("after"), &host_token("after").record),
    )
    .await
    .expect("a write after abandoned ones is not held up");
    after.unwrap();
    for (id, token_id) in abandoned {
        let host = store.get_host(&id).await.unwrap();
        let token = store.find_token(&token_id).await.unwrap();
        assert_eq!(host.is_some(), token.is_some(), "{id}: half a registration");
    }
}

/// What the topology's pages read: one host's snapshots, and every database's name alone.
async fn one_hosts_snapshots_and_all_database_names_read_alone(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    crate::support::builders::seed_estate(&store, 3, 2, 2).await;
    let snapshots = store.list_db_snapshots_on("host0001").await.unwrap();
    assert_eq!(
        snapshots.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["snap_0001_0", "snap_0001_1"]
    );
    assert!(snapshots.iter().all(|s| s.host_id == "host0001"));
    assert_eq!(store.list_db_snapshots_on("ghost").await.unwrap(), vec![]);
    let names = store.list_database_names().await.unwrap();
    assert_eq!(names.len(), 6);
    assert_eq!(names[0], ("host0000".to_owned(), "db0".to_owned()));
    assert_eq!(names[5], ("host0002".to_owned(), "db1".to_owned()));
}

/// Every change the topology shows moves the generation, committed or not at all; a host's
/// heartbeat (read on every request anyway) does not.
async fn the_topology_generation_moves_with_what_the_topology_shows(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let mut seen = store.topology_generation().await.unwrap();
    macro_rules! moved {
        ($what:expr) => {
            let now = store.topology_generation().await.unwrap();
            assert!(now > seen, "{}: the generation stayed at {seen}", $what);
            seen = now;
        };
    }
    crate::support::builders::seed_estate(&store, 1, 2, 1).await;
    moved!("inventory and a snapshot");
    let host = store.get_host("host0000").await.unwrap().unwrap();
    store
        .replace_databases("host0000", &[database("host0000", "5", "db0")])
        .await
        .unwrap();
    moved!("a new inventory");
    let snapshot = store.get_db_snapshot("snap_0000_0").await.unwrap().unwrap();
    let echo = flex::store::EchoDbRecord {
        host_id: host.host_id.clone(),
        db_id: "9".into(),
        name: "sales_echo".into(),
        snapshot_id: snapshot.id.clone(),
        src_host_id: host.host_id.clone(),
        src_db_id: "5".into(),
        src_db_name: "db0".into(),
        task_id: "t1".into(),
        created_ts: 1,
        volumes: Vec::new(),
        former_db_ids: Vec::new(),
        lifecycle: flex::model::Lifecycle::default(),
        expiry_task_id: None,
    };
    store.insert_echo_db(&echo).await.unwrap();
    moved!("an echo DB");
    let lifecycle = flex::model::Lifecycle {
        protected: true,
        ..flex::model::Lifecycle::default()
    };
    assert!(
        store
            .set_lifecycle("host0000", "9", lifecycle)
            .await
            .unwrap()
    );
    moved!("an echo DB's protection");
    assert!(
        store
            .delete_echo_db_row("host0000", "9", "t2")
            .await
            .unwrap()
    );
    moved!("an echo DB deleted");
    assert!(
        store
            .delete_db_snapshot_row(&snapshot.id, "t3")
            .await
            .unwrap()
    );
    moved!("a snapshot deleted");

    // What the topology reads fresh on every request, and what changes nothing, leaves it.
    store.record_host_sdps("host0000", &[]).await.unwrap();
    assert!(
        !store
            .delete_echo_db_row("host0000", "9", "t4")
            .await
            .unwrap()
    );
    assert!(
        !store
            .replace_databases("ghost", &[database("ghost", "1", "x")])
            .await
            .unwrap()
    );
    assert_eq!(store.topology_generation().await.unwrap(), seen);

    assert!(matches!(
        store.delete_host("host0000").await.unwrap(),
        DeleteHostOutcome::Deleted
    ));
    assert!(
        store.topology_generation().await.unwrap() > seen,
        "a host and its inventory deleted"
    );
}

crate::on_both_backends!(
    the_topology_generation_moves_with_what_the_topology_shows,
    one_hosts_snapshots_and_all_database_names_read_alone,
    migrations_are_idempotent_and_ready,
    hosts_register_once_with_their_token,
    hosts_list_in_id_order,
    deleting_a_host_removes_its_token_and_inventory,
    a_running_task_keeps_its_host,
    inventory_replaces_the_whole_list,
    tasks_round_trip_and_filter,
    tokens_are_found_listed_and_revoked,
    expired_sessions_are_purged,
    concurrent_writers_all_land,
    concurrent_writes_fail_and_are_abandoned_alone,
    the_ledger_adopts_only_what_a_task_intended,
    claims_on_a_shared_object_exclude_the_other_kind_until_their_task_ends,
    a_change_commits_with_its_audit_row_and_a_rolled_back_one_leaves_none,
);

/// A request's first committed write carries its audit row (status still unknown); a write
/// that rolls back takes its row with it; the answer then settles the row, once.
async fn a_change_commits_with_its_audit_row_and_a_rolled_back_one_leaves_none(backend: Backend) {
    use flex::store::{AuditEntry, AuditQuery, AuditScope};
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let entry = |ref_id: &str| AuditEntry {
        ts_ms: flex::clock::now_ms(),
        method: "PUT".into(),
        path: "/api/v1/hosts/host01".into(),
        ref_id: ref_id.into(),
        ..AuditEntry::default()
    };
    let rows = |ref_id: &'static str| {
        let store = store.clone();
        async move {
            let query = AuditQuery {
                ref_id: Some(ref_id.into()),
                limit: 10,
                ..AuditQuery::default()
            };
            store.audit_entries(&query).await.unwrap()
        }
    };

    let changed = AuditScope::new(entry("Changed"));
    changed
        .clone()
        .run(Box::pin(store.insert_host(
            &new_host("host01"),
            &host_token("host01").record,
        )))
        .await
        .unwrap();
    let written = rows("Changed").await;
    assert_eq!(written.len(), 1, "the row committed with the host");
    assert_eq!(written[0].status, None, "not answered yet");
    store.finish_audit(&changed, 201).await.unwrap();
    let settled = rows("Changed").await;
    assert_eq!(settled.len(), 1);
    assert_eq!(settled[0].status, Some(201));

    let refused = AuditScope::new(entry("Refused"));
    let again = refused
        .clone()
        .run(Box::pin(store.insert_host(
            &new_host("host01"),
            &host_token("host01").record,
        )))
        .await;
    assert!(again.is_err(), "the host exists");
    assert!(
        rows("Refused").await.is_empty(),
        "rolled back with the write"
    );
    store.finish_audit(&refused, 409).await.unwrap();
    let answered = rows("Refused").await;
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].status, Some(409));

    // Writes outside any request are not audited.
    store
        .insert_host(&new_host("host02"), &host_token("host02").record)
        .await
        .unwrap();
    let all = store
        .audit_entries(&AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
}

/// An object found after a create whose answer was lost is the task's own only if that task
/// said beforehand that it was about to create it.
async fn the_ledger_adopts_only_what_a_task_intended(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let iqn = "iqn.1991-05.com.microsoft:dev-01";
    store
        .ledger_intend(LedgerKind::HostIqn, iqn, "task-a")
        .await
        .unwrap();
    store
        .ledger_intend(LedgerKind::HostIqn, iqn, "task-a")
        .await
        .unwrap();
    assert!(
        !store
            .ledger_adopt(LedgerKind::HostIqn, 12, iqn, "task-b")
            .await
            .unwrap(),
        "another task's intent does not make the object ours"
    );
    assert!(
        !store
            .ledger_adopt(LedgerKind::Host, 3, "dev-01", "task-a")
            .await
            .unwrap(),
        "an object nobody intended is an operator's"
    );
    assert!(
        store
            .ledger_adopt(LedgerKind::HostIqn, 12, iqn, "task-a")
            .await
            .unwrap()
    );
    assert!(
        store
            .ledger_adopt(LedgerKind::HostIqn, 12, iqn, "task-b")
            .await
            .unwrap(),
        "once in the ledger, it is Flex's for every task"
    );
    let entry = store
        .ledger_entry(LedgerKind::HostIqn, 12)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (entry.name.as_str(), entry.task_id.as_str()),
        (iqn, "task-a")
    );
    assert_eq!(entry.deleted_ms, None);
    let live = store
        .ledger_live_of_task(LedgerKind::HostIqn, "task-a")
        .await
        .unwrap();
    assert_eq!(live, [entry]);
    store.ledger_deleted(LedgerKind::HostIqn, 12).await.unwrap();
    assert!(
        store
            .ledger_live_of_task(LedgerKind::HostIqn, "task-a")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .ledger_entry(LedgerKind::HostIqn, 12)
            .await
            .unwrap()
            .unwrap()
            .deleted_ms
            .is_some()
    );

    // An intent left by a create that never happened goes when its task ends.
    store
        .insert_task(&NewTask {
            record: task(
                "task-c",
                TaskState::Running,
                CommandType::CreateClone,
                "ref",
            ),
            host_ids: vec![],
        })
        .await
        .unwrap();
    store
        .ledger_intend(LedgerKind::Host, "dev-02", "task-c")
        .await
        .unwrap();
    assert!(
        store
            .finish_task("task-c", 0, TaskState::Failed, "refused", None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .ledger_adopt(LedgerKind::Host, 4, "dev-02", "task-c")
            .await
            .unwrap(),
        "the ended task's intent is gone"
    );
}

/// Users of a shared object exclude its releasers and the other way round, per object, until
/// the claiming task ends; claims of one kind share.
async fn claims_on_a_shared_object_exclude_the_other_kind_until_their_task_ends(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    for id in ["import-a", "import-b", "delete-c"] {
        store
            .insert_task(&NewTask {
                record: task(id, TaskState::Running, CommandType::Delete, id),
                host_ids: vec![],
            })
            .await
            .unwrap();
    }
    let snapshot = Shared::DbSnapshot("snap-1");
    assert_eq!(
        store.claim(snapshot, "import-a", Claim::Use).await.unwrap(),
        Ok(())
    );
    assert_eq!(
        store.claim(snapshot, "import-a", Claim::Use).await.unwrap(),
        Ok(())
    );
    assert_eq!(
        store.claim(snapshot, "import-b", Claim::Use).await.unwrap(),
        Ok(())
    );
    assert_eq!(
        store
            .claim(snapshot, "delete-c", Claim::Release)
            .await
            .unwrap(),
        Err("import-a".to_owned()),
        "a release waits for every user"
    );
    assert_eq!(
        store.claimants(snapshot, Claim::Use).await.unwrap(),
        ["import-a", "import-b"]
    );
    // Another object, and the same id of another kind, are not held.
    for other in [Shared::DbSnapshot("snap-2"), Shared::SdpHostOf("snap-1")] {
        assert_eq!(
            store
                .claim(other, "delete-c", Claim::Release)
                .await
                .unwrap(),
            Ok(())
        );
    }
    assert_eq!(
        store
            .claim(Shared::SdpHostOf("snap-1"), "import-a", Claim::Use)
            .await
            .unwrap(),
        Err("delete-c".to_owned()),
        "nobody starts using what is being released"
    );
    for id in ["import-a", "import-b"] {
        assert!(
            store
                .finish_task(id, 0, TaskState::Completed, "", None)
                .await
                .unwrap()
        );
    }
    assert!(
        store
            .claimants(snapshot, Claim::Use)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .claim(snapshot, "delete-c", Claim::Release)
            .await
            .unwrap(),
        Ok(()),
        "the users' claims ended with their tasks"
    );
}
