//! The rules the real SDP enforces, as the emulated array applies them to creates, updates
//! and deletes: unique names, name limits, a snapshot that freezes its group's volume list,
//! thin clones of a snapshot's volumes, a snapshot with live clones or a mapped volume that
//! cannot be deleted, hosts in host groups that cannot be mapped, the lowest free LUN.

use serde_json::Value;

use super::model::{
    ArrayState, Host, HostGroup, HostIqn, MAX_HOST_NAME, MAX_VG_NAME, Mapping, SdpFault,
    SdpOutcome, Snapshot, Volsnap, Volume, VolumeGroup, now_ms, now_secs,
};

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

impl ArrayState {
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
            let frozen = self.volsnaps_of(snapshot).any(|vs| vs.volume == volume);
            if !frozen {
                return Err(SdpFault::bad(format!(
                    "volume {volume} is not part of snapshot {snapshot}"
                )));
            }
            let size = self.volumes.get(&volume).map_or(0, |v| v.size);
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
                let volumes = self.volsnaps_of(parent).map(|vs| vs.volume).collect();
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
        // The lowest LUN the host has free (there are fewer mappings than numbers). One pass
        // over the mappings: asking each number in turn made a host's hundredth mapping
        // cost a hundred passes, and a thousand-clone bench measured the emulator, not Flex.
        let taken: std::collections::BTreeSet<u64> = self
            .mappings
            .values()
            .filter(|m| m.host == host_id)
            .map(|m| m.lun)
            .collect();
        let lun = (1..=u64::MAX).find(|lun| !taken.contains(lun)).unwrap_or(1);
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
                    description.clone_into(&mut volume.description);
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
                let frozen: Vec<u64> = self.volsnaps_of(id).map(|vs| vs.id).collect();
                for volsnap in frozen {
                    self.volsnaps.remove(&volsnap);
                }
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
}
