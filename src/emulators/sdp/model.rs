//! The emulated array's objects and the rules the real SDP enforces on them.
//!
//! Objects are kept typed; each is rendered to the API's JSON (with `{"ref": …}` relations) on
//! the way out, and list filters work on that rendering, exactly as a client sees it.

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
    fn bad(message: impl Into<String>) -> SdpFault {
        SdpFault::new(400, "MC_ERR_BAD_PARAMS", message)
    }
    fn not_found(collection: &str, id: u64) -> SdpFault {
        SdpFault::new(
            404,
            "MC_ERR_NOT_FOUND",
            format!("{collection} {id} not found"),
        )
    }
    fn exists(collection: &str, name: &str) -> SdpFault {
        SdpFault::new(
            409,
            "MC_ERR_OBJECT_EXISTS",
            format!("{collection} with name '{name}' already exists"),
        )
    }
    fn in_use(message: impl Into<String>) -> SdpFault {
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
    next_generation: u64,
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

const MAX_VG_NAME: usize = 42;
const MAX_HOST_NAME: usize = 32;

fn reference(collection: &str, id: u64) -> Value {
    json!({ "ref": format!("/{collection}/{id}") })
}

/// Reads `{"ref": "/collection/N"}` (or a bare "/collection/N") from a request body field.
fn parse_ref(body: &Value, field: &str, collection: &str) -> SdpOutcome<Option<u64>> {
    let Some(value) = body.get(field) else {
        return Ok(None);
    };
    if value.is_null() {
        return Ok(None);
    }
    let path = value
        .get("ref")
        .and_then(Value::as_str)
        .or_else(|| value.as_str())
        .ok_or_else(|| SdpFault::bad(format!("{field} must be a reference")))?;
    let id = path
        .trim_start_matches("/api/v2")
        .strip_prefix(&format!("/{collection}/"))
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| SdpFault::bad(format!("{field} must reference /{collection}/<id>")))?;
    Ok(Some(id))
}

fn required_ref(body: &Value, field: &str, collection: &str) -> SdpOutcome<u64> {
    parse_ref(body, field, collection)?
        .ok_or_else(|| SdpFault::bad(format!("missing field '{field}'")))
}

fn required_str<'a>(body: &'a Value, field: &str) -> SdpOutcome<&'a str> {
    body.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| SdpFault::bad(format!("missing or empty field '{field}'")))
}

fn bool_field(body: &Value, field: &str, default: bool) -> SdpOutcome<bool> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(SdpFault::bad(format!("field '{field}' must be a boolean"))),
    }
}

fn now_secs() -> u64 {
    crate::store::now_ts() as u64
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
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

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn take_scsi_suffix(&mut self) -> u64 {
        let suffix = self.next_scsi_suffix;
        self.next_scsi_suffix += 1;
        suffix
    }

    /// The serial a host sees: system id followed by a 4-digit suffix.
    pub fn scsi_sn(&self, suffix: u64) -> String {
        format!("{}{suffix:04}", self.system_id)
    }

    fn visible_volume(&self, id: u64, now_ms: u64) -> Option<&Volume> {
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
    pub fn render_all(&self, collection: &str, now_ms: u64) -> Option<Vec<Value>> {
        let rendered = match collection {
            "volume_groups" => self
                .volume_groups
                .values()
                .map(|vg| self.render_vg(vg))
                .collect(),
            "volumes" => self
                .volumes
                .values()
                .filter(|v| v.visible_from_ms <= now_ms)
                .map(|v| self.render_volume(v))
                .collect(),
            "snapshots" => self
                .snapshots
                .values()
                .map(|s| self.render_snapshot(s))
                .collect(),
            "volsnaps" => self
                .volsnaps
                .values()
                .map(|v| self.render_volsnap(v))
                .collect(),
            "hosts" => self.hosts.values().map(render_host).collect(),
            "host_groups" => self
                .host_groups
                .values()
                .map(|g| json!({"id": g.id, "name": g.name}))
                .collect(),
            "host_iqns" => self
                .host_iqns
                .values()
                .map(|i| json!({"id": i.id, "iqn": i.iqn, "host": reference("hosts", i.host)}))
                .collect(),
            "mappings" => self.mappings.values().map(render_mapping).collect(),
            "retention_policies" => self
                .retention_policies
                .values()
                .map(|p| serde_json::to_value(p).unwrap_or_default())
                .collect(),
            _ => return None,
        };
        Some(rendered)
    }

    pub fn render_one(&self, collection: &str, id: u64, now_ms: u64) -> SdpOutcome<Value> {
        let found = match collection {
            "volume_groups" => self.volume_groups.get(&id).map(|vg| self.render_vg(vg)),
            "volumes" => self
                .visible_volume(id, now_ms)
                .map(|v| self.render_volume(v)),
            "snapshots" => self.snapshots.get(&id).map(|s| self.render_snapshot(s)),
            "volsnaps" => self.volsnaps.get(&id).map(|v| self.render_volsnap(v)),
            "hosts" => self.hosts.get(&id).map(render_host),
            "host_groups" => self
                .host_groups
                .get(&id)
                .map(|g| json!({"id": g.id, "name": g.name})),
            "host_iqns" => self
                .host_iqns
                .get(&id)
                .map(|i| json!({"id": i.id, "iqn": i.iqn, "host": reference("hosts", i.host)})),
            "mappings" => self.mappings.get(&id).map(render_mapping),
            "retention_policies" => self
                .retention_policies
                .get(&id)
                .map(|p| serde_json::to_value(p).unwrap_or_default()),
            _ => None,
        };
        found.ok_or_else(|| SdpFault::not_found(collection, id))
    }

    fn render_vg(&self, vg: &VolumeGroup) -> Value {
        let volumes_count = self
            .volumes
            .values()
            .filter(|v| v.volume_group == vg.id)
            .count();
        let snapshots_count = self
            .snapshots
            .values()
            .filter(|s| s.volume_group == vg.id && s.source_snapshot.is_none())
            .count();
        json!({
            "id": vg.id,
            "name": vg.name,
            "quota": vg.quota,
            "is_dedup": vg.is_dedup,
            "description": vg.description,
            "volumes_count": volumes_count,
            "snapshots_count": snapshots_count,
        })
    }

    fn render_volume(&self, v: &Volume) -> Value {
        json!({
            "id": v.id,
            "name": v.name,
            "size": v.size,
            "volume_group": reference("volume_groups", v.volume_group),
            "scsi_sn": self.scsi_sn(v.scsi_suffix),
            "scsi_suffix": v.scsi_suffix,
            "read_only": v.read_only,
            "description": v.description,
            "is_thin_clone": v.is_thin_clone,
            "source_snapshot": v.source_snapshot.map(|s| reference("snapshots", s)),
            "source_volume": v.source_volume.map(|s| reference("volumes", s)),
        })
    }

    fn render_snapshot(&self, s: &Snapshot) -> Value {
        let vg_name = self
            .volume_groups
            .get(&s.volume_group)
            .map(|vg| vg.name.as_str())
            .unwrap_or_default();
        let source = match s.source_snapshot {
            Some(parent) => reference("snapshots", parent),
            None => reference("volume_groups", s.volume_group),
        };
        json!({
            "id": s.id,
            "name": format!("{vg_name}:{}", s.short_name),
            "short_name": s.short_name,
            "source": source,
            "volume_group": reference("volume_groups", s.volume_group),
            "retention_policy": reference("retention_policies", s.retention_policy),
            "is_exposable": s.is_exposable,
            "is_auto_deleteable": s.is_auto_deleteable,
            "is_application_consistent": s.is_application_consistent,
            "creation_time": s.creation_time,
            "generation_number": s.generation_number,
        })
    }

    fn render_volsnap(&self, v: &Volsnap) -> Value {
        let name = self
            .volumes
            .get(&v.volume)
            .map(|vol| vol.name.clone())
            .unwrap_or_default();
        json!({
            "id": v.id,
            "name": name,
            "snapshot": reference("snapshots", v.snapshot),
            "source": reference("volumes", v.volume),
            "scsi_sn": self.scsi_sn(v.scsi_suffix),
        })
    }

    /// Creates an object from a POST body; returns its id.
    pub fn create(
        &mut self,
        collection: &str,
        body: &Value,
        clone_delay_ms: u64,
    ) -> SdpOutcome<u64> {
        if !body.is_object() {
            return Err(SdpFault::bad("the body must be a JSON object"));
        }
        match collection {
            "volume_groups" => self.create_volume_group(body),
            "volumes" => self.create_volume(body, clone_delay_ms),
            "snapshots" => self.create_snapshot(body),
            "hosts" => self.create_host(body),
            "host_groups" => self.create_host_group(body),
            "host_iqns" => self.create_host_iqn(body),
            "mappings" => self.create_mapping(body),
            "volsnaps" | "retention_policies" => Err(SdpFault::new(
                405,
                "MC_ERR_NOT_ALLOWED",
                format!("{collection} are read-only"),
            )),
            _ => Err(SdpFault::new(404, "MC_ERR_NOT_FOUND", "no such collection")),
        }
    }

    fn create_volume_group(&mut self, body: &Value) -> SdpOutcome<u64> {
        let name = required_str(body, "name")?;
        if name.len() > MAX_VG_NAME {
            return Err(SdpFault::bad(format!(
                "volume group name longer than {MAX_VG_NAME} characters"
            )));
        }
        if self.volume_groups.values().any(|vg| vg.name == name) {
            return Err(SdpFault::exists("volume_groups", name));
        }
        let id = self.take_id();
        self.volume_groups.insert(
            id,
            VolumeGroup {
                id,
                name: name.to_owned(),
                quota: body.get("quota").and_then(Value::as_u64).unwrap_or(0),
                is_dedup: bool_field(body, "is_dedup", true)?,
                description: body
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            },
        );
        Ok(id)
    }

    fn create_volume(&mut self, body: &Value, clone_delay_ms: u64) -> SdpOutcome<u64> {
        let name = required_str(body, "name")?;
        if self.volumes.values().any(|v| v.name == name) {
            return Err(SdpFault::exists("volumes", name));
        }
        let volume_group = required_ref(body, "volume_group", "volume_groups")?;
        if !self.volume_groups.contains_key(&volume_group) {
            return Err(SdpFault::bad(format!(
                "volume group {volume_group} does not exist"
            )));
        }
        let description = body
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let is_thin_clone = bool_field(body, "is_thin_clone", false)?;
        let (size, source_snapshot, source_volume, visible_from_ms) = if is_thin_clone {
            let snapshot = required_ref(body, "source_snapshot", "snapshots")?;
            let volume = required_ref(body, "source_volume", "volumes")?;
            if !self.snapshots.contains_key(&snapshot) {
                return Err(SdpFault::bad(format!("snapshot {snapshot} does not exist")));
            }
            let frozen = self
                .volsnaps
                .values()
                .any(|vs| vs.snapshot == snapshot && vs.volume == volume);
            if !frozen {
                return Err(SdpFault::bad(format!(
                    "volume {volume} is not part of snapshot {snapshot}"
                )));
            }
            let size = self.volumes.get(&volume).map(|v| v.size).unwrap_or(0);
            (
                size,
                Some(snapshot),
                Some(volume),
                now_ms() + clone_delay_ms,
            )
        } else {
            let size = body
                .get("size")
                .and_then(Value::as_u64)
                .filter(|s| *s > 0)
                .ok_or_else(|| SdpFault::bad("field 'size' must be a positive number of KiB"))?;
            (size, None, None, 0)
        };
        let id = self.take_id();
        let scsi_suffix = self.take_scsi_suffix();
        self.volumes.insert(
            id,
            Volume {
                id,
                name: name.to_owned(),
                size,
                volume_group,
                scsi_suffix,
                read_only: bool_field(body, "read_only", false)?,
                description,
                is_thin_clone,
                source_snapshot,
                source_volume,
                visible_from_ms,
            },
        );
        Ok(id)
    }

    fn create_snapshot(&mut self, body: &Value) -> SdpOutcome<u64> {
        let short_name = required_str(body, "short_name")?.to_owned();
        let retention_policy = required_ref(body, "retention_policy", "retention_policies")?;
        if !self.retention_policies.contains_key(&retention_policy) {
            return Err(SdpFault::bad(format!(
                "retention policy {retention_policy} does not exist"
            )));
        }
        let source = body
            .get("source")
            .and_then(|s| s.get("ref"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        // A VG snapshot freezes the VG's volumes as they are now; a view exposes the volumes
        // of the snapshot it is made from.
        let (volume_group, source_snapshot, frozen_volumes): (u64, Option<u64>, Vec<u64>) =
            if source.contains("/volume_groups/") {
                let vg = required_ref(body, "source", "volume_groups")?;
                if !self.volume_groups.contains_key(&vg) {
                    return Err(SdpFault::bad(format!("volume group {vg} does not exist")));
                }
                let volumes = self
                    .volumes
                    .values()
                    .filter(|v| v.volume_group == vg)
                    .map(|v| v.id)
                    .collect();
                (vg, None, volumes)
            } else {
                let parent = required_ref(body, "source", "snapshots")?;
                let parent_snapshot = self
                    .snapshots
                    .get(&parent)
                    .ok_or_else(|| SdpFault::bad(format!("snapshot {parent} does not exist")))?;
                let volumes = self
                    .volsnaps
                    .values()
                    .filter(|vs| vs.snapshot == parent)
                    .map(|vs| vs.volume)
                    .collect();
                (parent_snapshot.volume_group, Some(parent), volumes)
            };
        let duplicate = self
            .snapshots
            .values()
            .any(|s| s.volume_group == volume_group && s.short_name == short_name);
        if duplicate {
            return Err(SdpFault::exists("snapshots", &short_name));
        }
        let id = self.take_id();
        let generation_number = self.next_generation;
        self.next_generation += 1;
        self.snapshots.insert(
            id,
            Snapshot {
                id,
                short_name,
                volume_group,
                source_snapshot,
                retention_policy,
                is_exposable: bool_field(body, "is_exposable", source_snapshot.is_some())?,
                is_auto_deleteable: bool_field(body, "is_auto_deleteable", false)?,
                is_application_consistent: bool_field(body, "is_application_consistent", false)?,
                creation_time: now_secs(),
                generation_number,
            },
        );
        for volume in frozen_volumes {
            let volsnap_id = self.take_id();
            let scsi_suffix = self.take_scsi_suffix();
            self.volsnaps.insert(
                volsnap_id,
                Volsnap {
                    id: volsnap_id,
                    snapshot: id,
                    volume,
                    scsi_suffix,
                },
            );
        }
        Ok(id)
    }

    fn create_host(&mut self, body: &Value) -> SdpOutcome<u64> {
        let name = required_str(body, "name")?;
        let valid = name.len() <= MAX_HOST_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(SdpFault::bad(format!(
                "host name must be at most {MAX_HOST_NAME} characters of [0-9A-Za-z_-]"
            )));
        }
        if self.hosts.values().any(|h| h.name == name) {
            return Err(SdpFault::exists("hosts", name));
        }
        let host_type = body.get("type").and_then(Value::as_str).unwrap_or("Linux");
        if !["Windows", "Linux", "ESX"].contains(&host_type) {
            return Err(SdpFault::bad("type must be Windows, Linux or ESX"));
        }
        let host_group = parse_ref(body, "host_group", "host_groups")?;
        if let Some(group) = host_group
            && !self.host_groups.contains_key(&group)
        {
            return Err(SdpFault::bad(format!("host group {group} does not exist")));
        }
        let id = self.take_id();
        self.hosts.insert(
            id,
            Host {
                id,
                name: name.to_owned(),
                host_type: host_type.to_owned(),
                host_group,
            },
        );
        Ok(id)
    }

    fn create_host_group(&mut self, body: &Value) -> SdpOutcome<u64> {
        let name = required_str(body, "name")?;
        if self.host_groups.values().any(|g| g.name == name) {
            return Err(SdpFault::exists("host_groups", name));
        }
        let id = self.take_id();
        self.host_groups.insert(
            id,
            HostGroup {
                id,
                name: name.to_owned(),
            },
        );
        Ok(id)
    }

    fn create_host_iqn(&mut self, body: &Value) -> SdpOutcome<u64> {
        let iqn = required_str(body, "iqn")?;
        let host = required_ref(body, "host", "hosts")?;
        if !self.hosts.contains_key(&host) {
            return Err(SdpFault::bad(format!("host {host} does not exist")));
        }
        if self.host_iqns.values().any(|i| i.iqn == iqn) {
            return Err(SdpFault::exists("host_iqns", iqn));
        }
        let id = self.take_id();
        self.host_iqns.insert(
            id,
            HostIqn {
                id,
                iqn: iqn.to_owned(),
                host,
            },
        );
        Ok(id)
    }

    fn create_mapping(&mut self, body: &Value) -> SdpOutcome<u64> {
        let host_id = required_ref(body, "host", "hosts")?;
        let volume = required_ref(body, "volume", "volumes")?;
        let host = self
            .hosts
            .get(&host_id)
            .ok_or_else(|| SdpFault::bad(format!("host {host_id} does not exist")))?;
        if host.host_group.is_some() {
            return Err(SdpFault::bad(format!(
                "host {} belongs to a host group and cannot be mapped individually",
                host.name
            )));
        }
        if self.visible_volume(volume, now_ms()).is_none() {
            return Err(SdpFault::bad(format!("volume {volume} does not exist")));
        }
        if self
            .mappings
            .values()
            .any(|m| m.host == host_id && m.volume == volume)
        {
            return Err(SdpFault::in_use(format!(
                "volume {volume} is already mapped to host {host_id}"
            )));
        }
        let lun = (1..)
            .find(|lun| {
                !self
                    .mappings
                    .values()
                    .any(|m| m.host == host_id && m.lun == *lun)
            })
            .unwrap_or(1);
        let id = self.take_id();
        self.mappings.insert(
            id,
            Mapping {
                id,
                host: host_id,
                volume,
                lun,
            },
        );
        Ok(id)
    }

    /// Applies a PATCH: the fields the emulator lets change.
    pub fn update(&mut self, collection: &str, id: u64, body: &Value) -> SdpOutcome<()> {
        match collection {
            "hosts" => {
                let group = parse_ref(body, "host_group", "host_groups")?;
                if let Some(group) = group
                    && !self.host_groups.contains_key(&group)
                {
                    return Err(SdpFault::bad(format!("host group {group} does not exist")));
                }
                if group.is_some() && self.mappings.values().any(|m| m.host == id) {
                    return Err(SdpFault::in_use("a mapped host cannot join a host group"));
                }
                let host = self
                    .hosts
                    .get_mut(&id)
                    .ok_or_else(|| SdpFault::not_found(collection, id))?;
                if body.get("host_group").is_some() {
                    host.host_group = group;
                }
                Ok(())
            }
            "volumes" => {
                let volume = self
                    .volumes
                    .get_mut(&id)
                    .ok_or_else(|| SdpFault::not_found(collection, id))?;
                if let Some(description) = body.get("description").and_then(Value::as_str) {
                    volume.description = description.to_owned();
                }
                if let Some(size) = body.get("size").and_then(Value::as_u64) {
                    if size < volume.size {
                        return Err(SdpFault::bad("a volume cannot shrink"));
                    }
                    volume.size = size;
                }
                Ok(())
            }
            _ => Err(SdpFault::new(
                405,
                "MC_ERR_NOT_ALLOWED",
                format!("{collection} cannot be updated here"),
            )),
        }
    }

    /// Deletes an object, refusing as the array does while something depends on it.
    pub fn delete(&mut self, collection: &str, id: u64) -> SdpOutcome<()> {
        match collection {
            "volume_groups" => {
                if !self.volume_groups.contains_key(&id) {
                    return Err(SdpFault::not_found(collection, id));
                }
                if self.volumes.values().any(|v| v.volume_group == id) {
                    return Err(SdpFault::in_use("the volume group still has volumes"));
                }
                if self.snapshots.values().any(|s| s.volume_group == id) {
                    return Err(SdpFault::in_use("the volume group still has snapshots"));
                }
                self.volume_groups.remove(&id);
            }
            "volumes" => {
                if !self.volumes.contains_key(&id) {
                    return Err(SdpFault::not_found(collection, id));
                }
                if self.mappings.values().any(|m| m.volume == id) {
                    return Err(SdpFault::in_use("the volume is mapped; unmap it first"));
                }
                if self.volumes.values().any(|v| v.source_volume == Some(id)) {
                    return Err(SdpFault::in_use("the volume has thin clones"));
                }
                self.volumes.remove(&id);
            }
            "snapshots" => {
                if !self.snapshots.contains_key(&id) {
                    return Err(SdpFault::not_found(collection, id));
                }
                if self.volumes.values().any(|v| v.source_snapshot == Some(id)) {
                    return Err(SdpFault::in_use(
                        "the snapshot has live thin clones; delete them first",
                    ));
                }
                if self
                    .snapshots
                    .values()
                    .any(|s| s.source_snapshot == Some(id))
                {
                    return Err(SdpFault::in_use(
                        "the snapshot has views; delete them first",
                    ));
                }
                self.snapshots.remove(&id);
                self.volsnaps.retain(|_, vs| vs.snapshot != id);
            }
            "hosts" => {
                if !self.hosts.contains_key(&id) {
                    return Err(SdpFault::not_found(collection, id));
                }
                if self.mappings.values().any(|m| m.host == id) {
                    return Err(SdpFault::in_use("the host has mappings; unmap them first"));
                }
                self.hosts.remove(&id);
                self.host_iqns.retain(|_, iqn| iqn.host != id);
            }
            "host_groups" => {
                if self.hosts.values().any(|h| h.host_group == Some(id)) {
                    return Err(SdpFault::in_use("the host group still has hosts"));
                }
                self.host_groups
                    .remove(&id)
                    .ok_or_else(|| SdpFault::not_found(collection, id))?;
            }
            "host_iqns" => {
                self.host_iqns
                    .remove(&id)
                    .ok_or_else(|| SdpFault::not_found(collection, id))?;
            }
            "mappings" => {
                self.mappings
                    .remove(&id)
                    .ok_or_else(|| SdpFault::not_found(collection, id))?;
            }
            _ => {
                return Err(SdpFault::new(
                    405,
                    "MC_ERR_NOT_ALLOWED",
                    format!("{collection} cannot be deleted"),
                ));
            }
        }
        Ok(())
    }

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

fn render_host(h: &Host) -> Value {
    json!({
        "id": h.id,
        "name": h.name,
        "type": h.host_type,
        "host_group": h.host_group.map(|g| reference("host_groups", g)),
    })
}

fn render_mapping(m: &Mapping) -> Value {
    json!({
        "id": m.id,
        "host": reference("hosts", m.host),
        "volume": reference("volumes", m.volume),
        "lun": m.lun,
    })
}

/// Applies the list query of the SDP API to rendered objects: `field=v`, `field.ref=/c/N`,
/// suffixes `__in`, `__contains`, `__prefix`, `__gt`, `__lt`, `__gte`, `__lte`, `__neq`; then
/// `__sort`, `__sort_order`, `__offset`, `__limit`. Returns the page and the total matched.
pub fn query(
    mut objects: Vec<Value>,
    params: &[(String, String)],
) -> SdpOutcome<(Vec<Value>, usize, usize, usize)> {
    let mut limit = 100usize;
    let mut offset = 0usize;
    let mut sort: Option<String> = None;
    let mut descending = false;
    for (key, value) in params {
        match key.as_str() {
            "__limit" => {
                limit = value
                    .parse()
                    .map_err(|_| SdpFault::bad("__limit must be a number"))?
            }
            "__offset" => {
                offset = value
                    .parse()
                    .map_err(|_| SdpFault::bad("__offset must be a number"))?
            }
            "__sort" => sort = Some(value.clone()),
            "__sort_order" => descending = value == "desc",
            _ => {
                let (field, op) = match key.rsplit_once("__") {
                    Some((field, op)) => (field, op),
                    None => (key.as_str(), "eq"),
                };
                objects.retain(|object| matches(object, field, op, value));
            }
        }
    }
    if let Some(field) = sort {
        objects.sort_by(|a, b| compare(field_value(a, &field), field_value(b, &field)));
        if descending {
            objects.reverse();
        }
    }
    let total = objects.len();
    let page = objects.into_iter().skip(offset).take(limit).collect();
    Ok((page, total, limit, offset))
}

/// `field` or `field.ref`, read from a rendered object.
fn field_value<'a>(object: &'a Value, field: &str) -> Option<&'a Value> {
    match field.strip_suffix(".ref") {
        Some(relation) => object.get(relation)?.get("ref"),
        None => object.get(field),
    }
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    match (a.and_then(Value::as_f64), b.and_then(Value::as_f64)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => as_text(a.unwrap_or(&Value::Null)).cmp(&as_text(b.unwrap_or(&Value::Null))),
    }
}

fn matches(object: &Value, field: &str, op: &str, wanted: &str) -> bool {
    let Some(value) = field_value(object, field) else {
        return false;
    };
    let text = as_text(value);
    let numeric = |f: fn(f64, f64) -> bool| match (value.as_f64(), wanted.parse::<f64>()) {
        (Some(x), Ok(y)) => f(x, y),
        _ => false,
    };
    match op {
        "eq" => text == wanted,
        "neq" => text != wanted,
        "in" => wanted.split(',').any(|w| w == text),
        "contains" => text.contains(wanted),
        "prefix" => text.starts_with(wanted),
        "gt" => numeric(|x, y| x > y),
        "lt" => numeric(|x, y| x < y),
        "gte" => numeric(|x, y| x >= y),
        "lte" => numeric(|x, y| x <= y),
        // An unknown suffix is part of the field name, which then does not exist.
        _ => false,
    }
}
