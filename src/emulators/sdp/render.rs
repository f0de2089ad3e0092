//! How the emulated array's objects look on the wire: the API's JSON, relations as
//! `{"ref": "/collection/id"}`, thin clones hidden until they "appear".

use serde_json::{Value, json};

use super::{
    model::{
        ArrayState, Host, Mapping, SdpFault, SdpOutcome, Snapshot, Volsnap, Volume, VolumeGroup,
    },
    query::Narrowing,
};

pub(super) fn reference(collection: &str, id: u64) -> Value {
    json!({ "ref": path(collection, id) })
}

/// An object's path, as its references carry it.
fn path(collection: &str, id: u64) -> String {
    format!("/{collection}/{id}")
}

impl ArrayState {
    /// Every object of `collection` that `narrowing` admits, as the API shows it.
    pub fn render_all(
        &self,
        collection: &str,
        now_ms: u64,
        narrowing: &Narrowing<'_>,
    ) -> Option<Vec<Value>> {
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
                .filter(|v| {
                    narrowing.admits("name", || v.name.clone())
                        && narrowing.admits("scsi_sn", || self.scsi_sn(v.scsi_suffix))
                        && narrowing
                            .admits("volume_group.ref", || path("volume_groups", v.volume_group))
                })
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
            "hosts" => self
                .hosts
                .values()
                .filter(|h| narrowing.admits("name", || h.name.clone()))
                .map(render_host)
                .collect(),
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
            "mappings" => self
                .mappings
                .values()
                .filter(|m| {
                    narrowing.admits("host.ref", || path("hosts", m.host))
                        && narrowing.admits("volume.ref", || path("volumes", m.volume))
                })
                .map(render_mapping)
                .collect(),
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
