//! What the emulated host does with each command, honestly: a freeze holds for a bounded
//! window, a rescan sees exactly what the SDP maps to its IQN, an attach needs its disks and a
//! free name, a detach releases them. A command id seen before gets its stored reply, without
//! acting again.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use super::{DatabaseSpec, Freeze as HeldFreeze, Shared, lock};
use crate::{
    agents::protocol::{
        Command, Failure, Reply,
        commands::{
            Attach, AttachReply, Detach, DetachReply, Freeze, FreezeReply, Request, Rescan,
            RescanReply, Thaw, ThawReply,
        },
    },
    model::{InventoryDatabase, InventoryFile, MountPoint},
};

fn failure(code: &str, message: impl Into<String>, retryable: bool) -> Failure {
    Failure {
        code: code.to_owned(),
        message: message.into(),
        retryable,
    }
}

/// A command's outcome: its reply's result or failure, and, when the databases changed, the
/// new inventory.
type Outcome = (
    Result<serde_json::Value, Failure>,
    Option<Vec<InventoryDatabase>>,
);

fn result(reply: &impl serde::Serialize) -> Result<serde_json::Value, Failure> {
    serde_json::to_value(reply).map_err(|err| failure("BAD_REPLY", err.to_string(), false))
}

/// Carries out a command once: a known id gets its stored reply. Returns the reply and, when
/// the databases changed, the new inventory.
pub async fn execute(
    shared: &Arc<Shared>,
    command: Command,
) -> (Reply, Option<Vec<InventoryDatabase>>) {
    {
        let mut state = lock(&shared.state);
        if let Some(reply) = state.replies.get(&command.id).cloned() {
            state.stats.repeats_answered += 1;
            return (reply, None);
        }
    }
    let id = command.id.clone();
    tracing::debug!(ref_id = %command.ref_id, %id, name = %command.name, "carrying out a command");
    let refused = lock(&shared.state).faults.refuse.contains(&command.name);
    let (outcome, inventory): Outcome = if refused {
        let refusal = format!("this host refuses '{}'", command.name);
        (Err(failure("REFUSED", refusal, false)), None)
    } else {
        match Request::decode(&command) {
            Err(failure) => (Err(failure), None),
            Ok(Request::Freeze(args)) => (freeze(shared, args), None),
            Ok(Request::Thaw(args)) => (thaw(shared, &args), None),
            Ok(Request::Rescan(args)) => (rescan(shared, args).await, None),
            Ok(Request::Attach(args)) => attach(shared, args).await,
            Ok(Request::Detach(args)) => detach(shared, &args),
        }
    };
    let reply = match outcome {
        Ok(result) => Reply {
            id: id.clone(),
            ok: true,
            result,
            error: None,
        },
        Err(failure) => Reply::failure(&id, failure),
    };
    let mut state = lock(&shared.state);
    state.stats.last_ref_id.clone_from(&command.ref_id);
    *state
        .stats
        .commands_acted
        .entry(command.name.clone())
        .or_default() += 1;
    state.replies.insert(id, reply.clone());
    (reply, inventory)
}

fn freeze(shared: &Arc<Shared>, args: Freeze) -> Result<serde_json::Value, Failure> {
    let mut state = lock(&shared.state);
    let missing: Vec<&String> = args
        .db_ids
        .iter()
        .filter(|db| !state.databases.iter().any(|d| &&d.id == db))
        .collect();
    if args.db_ids.is_empty() || !missing.is_empty() {
        return Err(failure(
            "DB_NOT_FOUND",
            format!("cannot freeze unknown databases {missing:?}"),
            false,
        ));
    }
    let freeze_id = format!("frz-{}", uuid::Uuid::new_v4().simple());
    let expired = Arc::new(AtomicBool::new(false));
    // Writes are held for the host's own window, or for less when Flex asks.
    let mut window = shared.config.freeze_window;
    if args.window_ms > 0 {
        window = window.min(Duration::from_millis(args.window_ms));
    }
    let timer = expired.clone();
    tokio::spawn(async move {
        tokio::time::sleep(window).await;
        // SQL Server resumes writes by itself when the window ends.
        timer.store(true, Ordering::SeqCst);
    });
    state.freezes.insert(
        freeze_id.clone(),
        HeldFreeze {
            expired,
            started: Instant::now(),
        },
    );
    result(&FreezeReply {
        freeze_id,
        window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
        db_ids: args.db_ids,
    })
}

fn thaw(shared: &Arc<Shared>, args: &Thaw) -> Result<serde_json::Value, Failure> {
    let Some(freeze) = lock(&shared.state).freezes.remove(&args.freeze_id) else {
        return Err(failure(
            "FREEZE_NOT_FOUND",
            format!("no freeze '{}'", args.freeze_id),
            false,
        ));
    };
    result(&ThawReply {
        held: !freeze.expired.load(Ordering::SeqCst),
        frozen_ms: u64::try_from(freeze.started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// The serials the SDP maps to this host's IQN right now.
async fn visible_serials(shared: &Shared) -> Result<Vec<String>, String> {
    let Some(sdp) = &shared.sdp else {
        return Ok(Vec::new());
    };
    // A real host's rescan asks its own disks, not the array: the SDP emulator answers what the
    // host would find in one call. Against an array without that endpoint, ask the API.
    if let Some(config) = &shared.config.sdp {
        let answer = shared
            .http
            .get(format!("{}/emulator/visible_serials", config.url))
            .basic_auth(&config.user, Some(&config.password))
            .query(&[("iqn", &shared.config.host.iqn)])
            .send()
            .await;
        if let Ok(response) = answer
            && response.status().is_success()
            && let Ok(serials) = response.json::<Vec<String>>().await
        {
            return Ok(serials);
        }
    }
    let lookup = async {
        let Some(host) = sdp.find_host_by_iqn(&shared.config.host.iqn).await? else {
            return Ok(Vec::new());
        };
        let mut serials = Vec::new();
        for mapping in sdp.list_mappings_of_host(host.id).await? {
            if let Some(volume) = mapping.volume.id()
                && let Some(volume) = sdp.get_volume(volume).await?
            {
                serials.push(volume.scsi_sn);
            }
        }
        Ok::<_, crate::sdp::SdpError>(serials)
    };
    lookup.await.map_err(|err| err.to_string())
}

async fn rescan(shared: &Arc<Shared>, args: Rescan) -> Result<serde_json::Value, Failure> {
    match visible_serials(shared).await {
        Ok(all) => {
            let visible = args
                .serials
                .into_iter()
                .filter(|s| all.contains(s))
                .collect();
            result(&RescanReply { visible, all })
        }
        Err(err) => Err(failure("RESCAN_FAILED", err, true)),
    }
}

async fn attach(shared: &Arc<Shared>, args: Attach) -> Outcome {
    if args.db_name.is_empty() || args.files.is_empty() {
        let refusal = failure("BAD_ARGS", "attach needs db_name and files", false);
        return (Err(refusal), None);
    }
    let visible = match visible_serials(shared).await {
        Ok(visible) => visible,
        Err(err) => return (Err(failure("RESCAN_FAILED", err, true)), None),
    };
    let missing: Vec<&String> = args
        .files
        .iter()
        .map(|f| &f.serial)
        .filter(|s| !visible.contains(s))
        .collect();
    if !missing.is_empty() {
        let message = format!("disks not visible yet: {missing:?}");
        return (Err(failure("DISKS_NOT_VISIBLE", message, true)), None);
    }
    let mut state = lock(&shared.state);
    if state
        .databases
        .iter()
        .any(|db| db.name.eq_ignore_ascii_case(&args.db_name))
    {
        let message = format!("a database named '{}' exists", args.db_name);
        return (Err(failure("DB_NAME_IN_USE", message, false)), None);
    }
    let db_id = match shared.config.database_ids {
        super::DatabaseIds::LowestFree => {
            let in_use: std::collections::HashSet<u64> = state
                .databases
                .iter()
                .filter_map(|db| db.id.parse().ok())
                .collect();
            // Among n databases one of the first n + 1 ids is free.
            let candidates =
                super::FIRST_USER_DATABASE_ID..=super::FIRST_USER_DATABASE_ID + in_use.len() as u64;
            candidates
                .into_iter()
                .find(|id| !in_use.contains(id))
                .unwrap_or(u64::MAX)
        }
        super::DatabaseIds::Ascending => {
            state.next_db_id += 1;
            state.next_db_id - 1
        }
    }
    .to_string();
    let mut mount_points: Vec<MountPoint> = Vec::new();
    let mut inventory_files = Vec::new();
    for (n, file) in args.files.iter().enumerate() {
        let drive = drive_for(&file.serial, &mut state.drives);
        if !mount_points.iter().any(|m| m.serial == file.serial) {
            mount_points.push(MountPoint {
                kind: "disk".into(),
                path: drive.clone(),
                serial: file.serial.clone(),
            });
        }
        inventory_files.push(InventoryFile {
            path: format!(
                "{drive}{}\\{}.{}",
                args.db_name,
                file.logical_name,
                file.kind.extension()
            ),
            name: file.logical_name.clone(),
            file_id: u32::try_from(n + 1).unwrap_or(u32::MAX),
            kind: file.kind,
            size_mb: file.size_mb,
        });
    }
    state.databases.push(InventoryDatabase {
        id: db_id.clone(),
        status: match args.target_state {
            crate::model::TargetState::Recovery => "RESTORING".into(),
            crate::model::TargetState::Online => "ONLINE".into(),
        },
        name: args.db_name,
        files: inventory_files,
        mount_points,
    });
    (
        result(&AttachReply { db_id }),
        Some(state.databases.clone()),
    )
}

fn detach(shared: &Arc<Shared>, args: &Detach) -> Outcome {
    let mut state = lock(&shared.state);
    let Some(position) = state.databases.iter().position(|db| db.id == args.db_id) else {
        // Already gone: detaching is idempotent.
        return (result(&DetachReply { detached: false }), None);
    };
    let removed = state.databases.remove(position);
    for mount in &removed.mount_points {
        let still_used = state
            .databases
            .iter()
            .any(|db| db.mount_points.iter().any(|m| m.serial == mount.serial));
        if !still_used {
            state.drives.remove(&mount.serial);
        }
    }
    (
        result(&DetachReply { detached: true }),
        Some(state.databases.clone()),
    )
}

/// The drive a disk is mounted as: C: is the system disk; data disks take the letters after
/// it, then mount folders.
pub fn drive_for(serial: &str, drives: &mut HashMap<String, String>) -> String {
    if let Some(drive) = drives.get(serial) {
        return drive.clone();
    }
    let used = drives.len();
    let drive = match u8::try_from(used) {
        Ok(used) if used < 22 => format!("{}:\\", char::from(b'E' + used)),
        _ => format!("C:\\SilkMounts\\{serial}\\"),
    };
    drives.insert(serial.to_owned(), drive.clone());
    drive
}

/// A configured database as the host reports it: its files on the drives of their volumes.
pub fn inventory_entry(
    db: &DatabaseSpec,
    serials: &HashMap<String, String>,
    drives: &mut HashMap<String, String>,
) -> InventoryDatabase {
    let mut mount_points: Vec<MountPoint> = Vec::new();
    let files = db
        .files
        .iter()
        .enumerate()
        .map(|(n, file)| {
            let serial = serials.get(&file.volume).cloned().unwrap_or_default();
            let drive = drive_for(&serial, drives);
            if !mount_points.iter().any(|m| m.serial == serial) {
                mount_points.push(MountPoint {
                    kind: "disk".into(),
                    path: drive.clone(),
                    serial,
                });
            }
            InventoryFile {
                name: file.name.clone(),
                file_id: u32::try_from(n + 1).unwrap_or(u32::MAX),
                kind: file.kind,
                path: format!(
                    "{drive}{}\\{}.{}",
                    db.name,
                    file.name,
                    file.kind.extension()
                ),
                size_mb: file.size_mb,
            }
        })
        .collect();
    InventoryDatabase {
        id: db.id.clone(),
        name: db.name.clone(),
        status: "ONLINE".into(),
        files,
        mount_points,
    }
}
