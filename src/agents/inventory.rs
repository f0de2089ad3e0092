//! Joining an agent's inventory to the array: each file gets the SDP volume and volume group
//! behind the disk it lives on (by serial), and the host gets the name of its SDP host object.
//! Done when the inventory arrives, so reading topology never calls the SDP.

use std::collections::HashMap;

use crate::{
    model::{SdpHostName, SdpPlacement, serial_for_path},
    sdp::{SdpClient, SdpError, Volume},
    store::DatabaseRecord,
};

/// What the array knows about a host itself.
pub struct SdpFacts {
    /// Each SDP this host uses: that has a host object for its IQN (named as that object), or
    /// that holds its databases' files (named as the host, when no object is found).
    pub sdps: Vec<SdpHostName>,
}

/// The Flex host whose inventory is joined.
pub struct JoinedHost<'a> {
    pub name: &'a str,
    pub iqn: &'a str,
}

/// Places every file whose disk is an SDP volume on that volume (and its volume group).
pub async fn join_to_sdp(
    sdp: &SdpClient,
    sdp_id: &str,
    joined: &JoinedHost<'_>,
    records: &mut [DatabaseRecord],
) -> Result<SdpFacts, SdpError> {
    let mut serials: Vec<String> = records
        .iter()
        .flat_map(|db| db.mount_points.iter().map(|m| m.serial.clone()))
        .collect();
    serials.sort();
    serials.dedup();
    // Independent lookups go out together: one round trip of the array's latency, not two.
    let host_lookup = async {
        if joined.iqn.is_empty() {
            Ok(None)
        } else {
            sdp.find_host_by_iqn(joined.iqn).await
        }
    };
    let (volumes, host) = tokio::try_join!(sdp.find_volumes_by_serials(&serials), host_lookup)?;
    let mut group_ids: Vec<u64> = volumes.iter().filter_map(|v| v.volume_group.id()).collect();
    group_ids.sort_unstable();
    group_ids.dedup();
    let group_names = sdp.volume_group_names(&group_ids).await?;
    let by_serial: HashMap<&str, &Volume> =
        volumes.iter().map(|v| (v.scsi_sn.as_str(), v)).collect();
    for record in records.iter_mut() {
        let mounts = &record.mount_points;
        for file in &mut record.files {
            let Some(volume) = serial_for_path(&file.file.path, mounts)
                .and_then(|serial| by_serial.get(serial).copied())
            else {
                continue;
            };
            let group = volume.volume_group.id();
            file.sdp = Some(SdpPlacement {
                sdp_id: sdp_id.to_owned(),
                volume_id: volume.id,
                volume_name: volume.name.clone(),
                volume_scsi_sn: volume.scsi_sn.clone(),
                volume_group_id: group,
                volume_group_name: group.and_then(|g| group_names.get(&g).cloned()),
            });
        }
    }
    let on_this_sdp = records
        .iter()
        .flat_map(|db| &db.files)
        .any(|file| file.sdp.is_some());
    let host_name = match host {
        Some(host) => Some(host.name),
        None if on_this_sdp => Some(joined.name.to_owned()),
        None => None,
    };
    let sdps = host_name
        .map(|host_name| SdpHostName {
            sdp_id: sdp_id.to_owned(),
            host_name,
        })
        .into_iter()
        .collect();
    Ok(SdpFacts { sdps })
}
