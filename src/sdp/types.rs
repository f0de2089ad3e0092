//! The SDP objects Flex reads, as the REST API renders them. Fields Flex does not use are
//! ignored, and optional ones default, so newer array versions do not break the client.

use serde::{Deserialize, Deserializer};

/// A relation: `{"ref": "/volume_groups/2"}`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Ref {
    #[serde(rename = "ref")]
    pub path: String,
}

impl Ref {
    pub fn to(collection: &str, id: u64) -> Ref {
        Ref {
            path: format!("/{collection}/{id}"),
        }
    }

    /// The id at the end of the reference.
    pub fn id(&self) -> Option<u64> {
        self.path.rsplit('/').next()?.parse().ok()
    }
}

/// Arrays report some identifiers as numbers and others as strings.
fn string_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        S(String),
        N(serde_json::Number),
    }
    Ok(match Either::deserialize(deserializer)? {
        Either::S(s) => s,
        Either::N(n) => n.to_string(),
    })
}

#[derive(Clone, Debug, Deserialize)]
pub struct SystemState {
    pub state: String,
    #[serde(deserialize_with = "string_or_number")]
    pub system_id: String,
    #[serde(default)]
    pub system_name: String,
    #[serde(default)]
    pub system_version: String,
    #[serde(default)]
    pub rest_api_version: String,
    #[serde(default)]
    pub iscsi_qualified_target_name: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct VolumeGroup {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub quota: u64,
    #[serde(default)]
    pub volumes_count: u64,
    #[serde(default)]
    pub snapshots_count: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Volume {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub size: u64,
    pub volume_group: Ref,
    #[serde(deserialize_with = "string_or_number")]
    pub scsi_sn: String,
    #[serde(default)]
    pub is_thin_clone: bool,
    #[serde(default)]
    pub source_snapshot: Option<Ref>,
    #[serde(default)]
    pub source_volume: Option<Ref>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Snapshot {
    pub id: u64,
    pub name: String,
    pub short_name: String,
    pub source: Ref,
    pub volume_group: Ref,
    #[serde(default)]
    pub is_exposable: bool,
    #[serde(default)]
    pub is_application_consistent: bool,
    #[serde(default)]
    pub creation_time: u64,
    #[serde(default)]
    pub generation_number: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Volsnap {
    pub id: u64,
    #[serde(default)]
    pub name: String,
    pub snapshot: Ref,
    pub source: Ref,
    #[serde(deserialize_with = "string_or_number")]
    pub scsi_sn: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Host {
    pub id: u64,
    pub name: String,
    #[serde(rename = "type", default)]
    pub host_type: String,
    #[serde(default)]
    pub host_group: Option<Ref>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct HostIqn {
    pub id: u64,
    pub iqn: String,
    pub host: Ref,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Mapping {
    pub id: u64,
    pub host: Ref,
    pub volume: Ref,
    pub lun: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct RetentionPolicy {
    pub id: u64,
    pub name: String,
}

/// A list answer: `{"hits": [...], "total": N, "limit": L, "offset": O}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope<T> {
    pub hits: Vec<T>,
    #[serde(default)]
    pub total: Option<usize>,
}
