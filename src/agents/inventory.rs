//! Joining an agent's inventory to the array: each file gets the SDP volume and volume group
//! behind the disk it lives on (by serial), and the host gets the name of its SDP host object.
//! Done when the inventory arrives, so reading topology never calls the SDP.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::{
    sdp::{SdpClient, SdpError},
    store::{DatabaseRecord, serial_for_path},
};

/// What the array knows about a host's disks and about the host itself.
pub struct SdpFacts {
    /// `{"sdp_id", "host_name"}` per SDP that has a host object for this host's IQN.
    pub sdps: Vec<Value>,
}

/// Adds `volume_id`, `volume_name`, `volume_group_id`, `volume_group_name`,
/// `volume_scsi_sn` and `sdp_id` to every file whose disk is an SDP volume.
pub async fn join_to_sdp(
    sdp: &SdpClient,
    sdp_id: &str,
    host_iqn: &str,
    records: &mut [DatabaseRecord],
) -> Result<SdpFacts, SdpError> {
    let mut serials: Vec<String> = records
        .iter()
        .flat_map(|db| serde_json::from_str::<Vec<Value>>(&db.mount_points).unwrap_or_default())
        .filter_map(|mount| {
            mount
                .get("serial")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    serials.sort();
    serials.dedup();
    let volumes = sdp.find_volumes_by_serials(&serials).await?;
    let group_names: HashMap<u64, String> = if volumes.is_empty() {
        HashMap::new()
    } else {
        sdp.list_volume_groups()
            .await?
            .into_iter()
            .map(|vg| (vg.id, vg.name))
            .collect()
    };
    let by_serial: HashMap<&str, &crate::sdp::Volume> =
        volumes.iter().map(|v| (v.scsi_sn.as_str(), v)).collect();
    for record in records.iter_mut() {
        let mounts: Vec<Value> = serde_json::from_str(&record.mount_points).unwrap_or_default();
        let mut files: Vec<Value> = serde_json::from_str(&record.files).unwrap_or_default();
        for file in &mut files {
            let path = file.get("path").and_then(Value::as_str).unwrap_or_default();
            let Some(volume) = serial_for_path(path, &mounts)
                .and_then(|serial| by_serial.get(serial.as_str()).copied())
            else {
                continue;
            };
            let group = volume.volume_group.id();
            if let Some(object) = file.as_object_mut() {
                object.insert("sdp_id".into(), json!(sdp_id));
                object.insert("volume_id".into(), json!(volume.id));
                object.insert("volume_name".into(), json!(volume.name));
                object.insert("volume_scsi_sn".into(), json!(volume.scsi_sn));
                object.insert("volume_group_id".into(), json!(group));
                object.insert(
                    "volume_group_name".into(),
                    json!(group.and_then(|g| group_names.get(&g))),
                );
            }
        }
        record.files = Value::Array(files).to_string();
    }
    let host = if host_iqn.is_empty() {
        None
    } else {
        sdp.find_host_by_iqn(host_iqn).await?
    };
    let sdps = match host {
        Some(host) => vec![json!({"sdp_id": sdp_id, "host_name": host.name})],
        None => Vec::new(),
    };
    Ok(SdpFacts { sdps })
}
