//! Test data: the emulated source host's databases, and store records built the way the API
//! would build them. Depends on nothing else in `support`, so the benchmarks include it too.

#![allow(dead_code)]

use flex::{
    auth::{self, TokenSpec},
    clock::now_ts,
    emulators::agent::{DatabaseSpec, FileSpec},
    model::{
        CommandType, ConsistencyLevel, DatabaseFile, FileKind, InventoryFile, MountPoint, SourceDb,
        TaskState, VgSnapshot,
    },
    store::{DatabaseRecord, DbSnapshotRecord, NewHost, Store, TaskRecord, TokenKind},
};

/// A database file on an SDP volume, as an emulated host is configured with it.
pub fn file(
    name: &str,
    kind: FileKind,
    volume: &str,
    volume_group: &str,
    size_mb: u64,
) -> FileSpec {
    FileSpec {
        name: name.into(),
        kind,
        volume: volume.into(),
        volume_group: volume_group.into(),
        size_mb,
    }
}

/// `sales` (id 5): data and log on two volumes of one volume group.
pub fn sales(size_mb: u64) -> DatabaseSpec {
    DatabaseSpec {
        id: "5".into(),
        name: "sales".into(),
        files: vec![
            file(
                "sales_data",
                FileKind::Data,
                "src-sales-data",
                "src-vg-1",
                size_mb,
            ),
            file(
                "sales_log",
                FileKind::Log,
                "src-sales-log",
                "src-vg-1",
                size_mb,
            ),
        ],
    }
}

/// `hr` (id 6): data and log on one volume of another volume group.
pub fn hr(size_mb: u64) -> DatabaseSpec {
    DatabaseSpec {
        id: "6".into(),
        name: "hr".into(),
        files: vec![
            file("hr_data", FileKind::Data, "src-hr", "src-vg-2", size_mb),
            file("hr_log", FileKind::Log, "src-hr", "src-vg-2", size_mb),
        ],
    }
}

/// The source host most tests drive: `sales` and `hr`, on two volume groups.
pub fn source_databases(size_mb: u64) -> Vec<DatabaseSpec> {
    vec![sales(size_mb), hr(size_mb)]
}

pub fn host_token(host_id: &str) -> auth::MintedToken {
    auth::mint(TokenSpec {
        kind: TokenKind::Host,
        role: flex::store::Role::Viewer,
        host_id: Some(host_id),
        app_name: "agent",
        description: "",
        ttl: None,
    })
}

pub fn new_host(host_id: &str) -> NewHost {
    NewHost {
        host_id: host_id.to_owned(),
        db_vendor: "mssql".to_owned(),
    }
}

pub fn task(
    request_id: &str,
    state: TaskState,
    command_type: CommandType,
    ref_id: &str,
) -> TaskRecord {
    let now = now_ts();
    TaskRecord {
        request_id: request_id.to_owned(),
        state,
        create_ts: now,
        update_ts: now,
        owner: "ocie-0".to_owned(),
        command_type,
        ref_id: ref_id.to_owned(),
        error: String::new(),
        result: None,
        location: format!("/flex/api/v1/ocie/tasks/{request_id}"),
        request: "{}".to_owned(),
        position: flex::store::StepPosition::default(),
    }
}

/// A database as a host's agent reports it: one data file on one disk.
pub fn database(host_id: &str, db_id: &str, name: &str) -> DatabaseRecord {
    DatabaseRecord {
        host_id: host_id.to_owned(),
        db_id: db_id.to_owned(),
        name: name.to_owned(),
        vendor: "mssql".to_owned(),
        status: "ONLINE".to_owned(),
        files: vec![DatabaseFile::from(InventoryFile {
            name: "data".into(),
            file_id: 1,
            kind: FileKind::Data,
            path: "E:\\data.mdf".into(),
            size_mb: 8,
        })],
        mount_points: vec![MountPoint {
            kind: "disk".into(),
            path: "E:\\".into(),
            serial: "1344090006".into(),
        }],
        updated_ts: now_ts(),
    }
}

/// An estate of `hosts` hosts (`host0000`…), each with `databases` databases and `snapshots`
/// db snapshots of them all, written straight to the store: what the topology benchmark and
/// the console's large-estate test read.
pub async fn seed_estate(store: &Store, hosts: usize, databases: usize, snapshots: usize) {
    let now = now_ts();
    for h in 0..hosts {
        let host_id = format!("host{h:04}");
        let token = auth::mint(TokenSpec {
            kind: TokenKind::Host,
            role: flex::store::Role::Viewer,
            host_id: Some(&host_id),
            app_name: "agent",
            description: "",
            ttl: None,
        });
        store
            .insert_host(
                &NewHost {
                    host_id: host_id.clone(),
                    db_vendor: "mssql".into(),
                },
                &token.record,
            )
            .await
            .unwrap();
        let records: Vec<DatabaseRecord> = (0..databases)
            .map(|d| DatabaseRecord {
                host_id: host_id.clone(),
                db_id: format!("{}", d + 5),
                name: format!("db{d}"),
                vendor: "mssql".into(),
                status: "ONLINE".into(),
                files: vec![DatabaseFile::from(InventoryFile {
                    name: format!("db{d}_data"),
                    file_id: 1,
                    kind: FileKind::Data,
                    path: format!("E:\\db{d}\\data.mdf"),
                    size_mb: 1024,
                })],
                mount_points: vec![MountPoint {
                    kind: "disk".into(),
                    path: "E:\\".into(),
                    serial: format!("134409{h:04}"),
                }],
                updated_ts: now,
            })
            .collect();
        store.replace_databases(&host_id, &records).await.unwrap();
        let members: Vec<SourceDb> = (0..databases)
            .map(|d| SourceDb {
                db_id: format!("{}", d + 5),
                db_name: format!("db{d}"),
                files: Vec::new(),
            })
            .collect();
        for s in 0..snapshots {
            store
                .insert_db_snapshot(&DbSnapshotRecord {
                    id: format!("snap_{h:04}_{s}"),
                    host_id: host_id.clone(),
                    host_name: host_id.clone(),
                    sdp_id: "134409".into(),
                    consistency_level: ConsistencyLevel::Application,
                    db_engine_version: "16.0.1000.6".into(),
                    is_vss_based: false,
                    created_ts: now,
                    task_id: "seed".into(),
                    vg_snapshots: vec![VgSnapshot {
                        vg_id: 1,
                        sdp_snapshot_id: s as u64,
                    }],
                    databases: members.clone(),
                    schedule_id: None,
                })
                .await
                .unwrap();
        }
    }
}
