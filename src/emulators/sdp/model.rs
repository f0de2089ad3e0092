//! The emulated array's objects and its state. The rules the real SDP enforces when objects
//! are created, changed and deleted are in `rules`; how objects look on the wire in `render`;
//! list queries in `query`. Objects are kept typed; each is rendered to the API's JSON (with
//! `{"ref": …}` relations) on the way out, and list filters work on that rendering, exactly as
//! a client sees it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// An error the array answers with: HTTP status, an error code and `error_msg`.
#[derive(Debug, Clone, PartialEq)]
pub struct SdpFault {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl SdpFault {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> SdpFault {
        SdpFault {
            status,
            code,
            message: message.into(),
        }
    }
    pub(super) fn bad(message: impl Into<String>) -> SdpFault {
        SdpFault::new(400, "MC_ERR_BAD_PARAMS", message)
    }
    pub(super) fn not_found(collection: &str, id: u64) -> SdpFault {
        SdpFault::new(
            404,
            "MC_ERR_NOT_FOUND",
            format!("{collection} {id} not found"),
        )
    }
    pub(super) fn exists(collection: &str, name: &str) -> SdpFault {
        SdpFault::new(
            409,
            "MC_ERR_OBJECT_EXISTS",
            format!("{collection} with name '{name}' already exists"),
        )
    }
    pub(super) fn in_use(message: impl Into<String>) -> SdpFault {
        SdpFault::new(409, "MC_ERR_OBJECT_IN_USE", message)
    }
}

pub type SdpOutcome<T> = Result<T, SdpFault>;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VolumeGroup {
    pub id: u64,
    pub name: String,
    pub quota: u64,
    pub is_dedup: bool,
    pub description: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Volume {
    pub id: u64,
    pub name: String,
    /// KiB.
    pub size: u64,
    pub volume_group: u64,
    pub scsi_suffix: u64,
    pub read_only: bool,
    pub description: String,
    pub is_thin_clone: bool,
    pub source_snapshot: Option<u64>,
    pub source_volume: Option<u64>,
    /// Unix milliseconds from which the volume is listed (thin clones appear after a delay).
    pub visible_from_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: u64,
    pub short_name: String,
    pub volume_group: u64,
    /// The snapshot a view was made from; `None` for a volume-group snapshot.
    pub source_snapshot: Option<u64>,
    pub retention_policy: u64,
    pub is_exposable: bool,
    pub is_auto_deleteable: bool,
    pub is_application_consistent: bool,
    pub creation_time: u64,
    pub generation_number: u64,
}

/// One volume frozen in one snapshot or view.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Volsnap {
    pub id: u64,
    pub snapshot: u64,
    pub volume: u64,
    pub scsi_suffix: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Host {
    pub id: u64,
    pub name: String,
    pub host_type: String,
    pub host_group: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostGroup {
    pub id: u64,
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostIqn {
    pub id: u64,
    pub iqn: String,
    pub host: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Mapping {
    pub id: u64,
    pub host: u64,
    pub volume: u64,
    pub lun: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RetentionPolicy {
    pub id: u64,
    pub name: String,
    pub num_snapshots: u64,
    pub weeks: u64,
    pub days: u64,
    pub hours: u64,
}

/// Everything the array holds. Serializable, so `--state FILE` can keep it across restarts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ArrayState {
    pub system_id: String,
    pub system_name: String,
    next_id: u64,
    next_scsi_suffix: u64,
    pub(super) next_generation: u64,
    pub volume_groups: BTreeMap<u64, VolumeGroup>,
    pub volumes: BTreeMap<u64, Volume>,
    pub snapshots: BTreeMap<u64, Snapshot>,
    pub volsnaps: BTreeMap<u64, Volsnap>,
    pub hosts: BTreeMap<u64, Host>,
    pub host_groups: BTreeMap<u64, HostGroup>,
    pub host_iqns: BTreeMap<u64, HostIqn>,
    pub mappings: BTreeMap<u64, Mapping>,
    pub retention_policies: BTreeMap<u64, RetentionPolicy>,
}

/// The collections the API serves, in path form.
pub const COLLECTIONS: [&str; 9] = [
    "volume_groups",
    "volumes",
    "snapshots",
    "volsnaps",
    "hosts",
    "host_groups",
    "host_iqns",
    "mappings",
    "retention_policies",
];

pub(super) const MAX_VG_NAME: usize = 42;
pub(super) const MAX_HOST_NAME: usize = 32;

pub(super) fn now_secs() -> u64 {
    u64::try_from(crate::clock::now_ts()).unwrap_or_default()
}

pub fn now_ms() -> u64 {
    u64::try_from(crate::clock::now_ms()).unwrap_or_default()
}

impl ArrayState {
    pub fn new(system_id: &str, system_name: &str) -> ArrayState {
        let mut state = ArrayState {
            system_id: system_id.to_owned(),
            system_name: system_name.to_owned(),
            next_id: 1,
            next_scsi_suffix: 1,
            next_generation: 1,
            volume_groups: BTreeMap::new(),
            volumes: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            volsnaps: BTreeMap::new(),
            hosts: BTreeMap::new(),
            host_groups: BTreeMap::new(),
            host_iqns: BTreeMap::new(),
            mappings: BTreeMap::new(),
            retention_policies: BTreeMap::new(),
        };
        for (name, num_snapshots) in [("Best_Effort_Retention", 0), ("Backup", 7)] {
            let id = state.take_id();
            state.retention_policies.insert(
                id,
                RetentionPolicy {
                    id,
                    name: name.to_owned(),
                    num_snapshots,
                    weeks: 0,
                    days: 0,
                    hours: 0,
                },
            );
        }
        state
    }

    pub(super) fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(super) fn take_scsi_suffix(&mut self) -> u64 {
        let suffix = self.next_scsi_suffix;
        self.next_scsi_suffix += 1;
        suffix
    }

    /// The serial a host sees: system id followed by a 4-digit suffix.
    pub fn scsi_sn(&self, suffix: u64) -> String {
        format!("{}{suffix:04}", self.system_id)
    }

    /// The volumes `snapshot` froze. A snapshot's volsnaps take the ids right after its own,
    /// in one call that nothing else interleaves with, so they are the run of keys that
    /// follows it: a look-up reads that run, not every volsnap of the array (a volume group
    /// that holds its own thin clones makes that millions).
    pub(super) fn volsnaps_of(&self, snapshot: u64) -> impl Iterator<Item = &Volsnap> {
        self.volsnaps
            .range(snapshot + 1..)
            .map(|(_, volsnap)| volsnap)
            .take_while(move |volsnap| volsnap.snapshot == snapshot)
    }

    pub(super) fn visible_volume(&self, id: u64, now_ms: u64) -> Option<&Volume> {
        self.volumes
            .get(&id)
            .filter(|v| v.visible_from_ms <= now_ms)
    }

    pub fn system_state(&self) -> Value {
        json!({
            "id": 1,
            "state": "ONLINE",
            "system_id": self.system_id,
            "system_name": self.system_name,
            "system_version": "8.2.0",
            "rest_api_version": "2.2.0",
            "iscsi_qualified_target_name": format!("iqn.2009-01.com.kaminario:storage.k2.{}", self.system_id),
        })
    }

    /// Every object of a collection as the API renders it (thin clones only once visible).
    /// Serials the array exposes to the host with this IQN: the volumes mapped to it.
    pub fn serials_visible_to(&self, iqn: &str) -> Vec<String> {
        let Some(host) = self
            .host_iqns
            .values()
            .find(|i| i.iqn == iqn)
            .map(|i| i.host)
        else {
            return Vec::new();
        };
        self.mappings
            .values()
            .filter(|m| m.host == host)
            .filter_map(|m| self.volumes.get(&m.volume))
            .map(|v| self.scsi_sn(v.scsi_suffix))
            .collect()
    }
}
