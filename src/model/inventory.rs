//! What a host's agent reports about the host and its databases (the agent protocol's
//! `hello` facts and `inventory`), and what Flex adds to it from the array: the SDP volume
//! and volume group under each file, and the SDP host objects that know the host.

use serde::{Deserialize, Serialize};

crate::wire_enum! {
    /// A SQL Server database file's role.
    pub enum FileKind ("file kind") {
        Data = "data",
        Log = "log",
    }
}

impl FileKind {
    /// The file name extension SQL Server gives files of this kind.
    pub fn extension(self) -> &'static str {
        match self {
            FileKind::Data => "mdf",
            FileKind::Log => "ldf",
        }
    }
}

/// One database as the agent reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InventoryDatabase {
    pub id: String,
    pub name: String,
    #[serde(default = "online")]
    pub status: String,
    #[serde(default)]
    pub files: Vec<InventoryFile>,
    #[serde(default)]
    pub mount_points: Vec<MountPoint>,
}

fn online() -> String {
    "ONLINE".to_owned()
}

/// A database file as the agent reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InventoryFile {
    pub name: String,
    #[serde(default)]
    pub file_id: u32,
    pub kind: FileKind,
    pub path: String,
    #[serde(default)]
    pub size_mb: u64,
}

/// A disk (or mount folder) a database's files live on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MountPoint {
    #[serde(default = "disk")]
    pub kind: String,
    pub path: String,
    /// The SCSI serial of the disk: joins the database to its SDP volume.
    pub serial: String,
}

fn disk() -> String {
    "disk".to_owned()
}

/// A database file as Flex keeps it: as reported, plus where it lives on the array once the
/// inventory was joined to the SDP.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatabaseFile {
    #[serde(flatten)]
    pub file: InventoryFile,
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub sdp: Option<SdpPlacement>,
}

impl From<InventoryFile> for DatabaseFile {
    fn from(file: InventoryFile) -> Self {
        DatabaseFile { file, sdp: None }
    }
}

/// The SDP volume (and volume group) behind a file's disk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SdpPlacement {
    pub sdp_id: String,
    pub volume_id: u64,
    pub volume_name: String,
    pub volume_scsi_sn: String,
    pub volume_group_id: Option<u64>,
    pub volume_group_name: Option<String>,
}

/// The serial of the disk holding `path`: the mount point whose path is the longest prefix
/// of it (Windows paths, so compared without case).
pub fn serial_for_path<'a>(path: &str, mount_points: &'a [MountPoint]) -> Option<&'a str> {
    mount_points
        .iter()
        .filter(|mount| {
            let prefix = mount.path.as_str();
            !prefix.is_empty()
                && path.len() >= prefix.len()
                && path.is_char_boundary(prefix.len())
                && path[..prefix.len()].eq_ignore_ascii_case(prefix)
        })
        .max_by_key(|mount| mount.path.len())
        .map(|mount| mount.serial.as_str())
}

/// Facts an agent reports about its host beyond the named fields (`hello.facts`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostFacts {
    pub vm_id: String,
    pub cidrs: Vec<String>,
    pub instance_type: String,
    pub cpus: u64,
    pub memory: u64,
    pub location: String,
    pub zone: String,
}

/// An SDP that has a host object for this host, and that object's name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SdpHostName {
    pub sdp_id: String,
    pub host_name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(path: &str, serial: &str) -> MountPoint {
        MountPoint {
            kind: "disk".into(),
            path: path.into(),
            serial: serial.into(),
        }
    }

    #[test]
    fn files_take_the_serial_of_the_deepest_mount_point() {
        let mounts = [mount("E:\\", "E1"), mount("E:\\Data\\Big\\", "BIG")];
        assert_eq!(
            serial_for_path("e:\\data\\big\\x.mdf", &mounts),
            Some("BIG")
        );
        assert_eq!(serial_for_path("E:\\Logs\\y.ldf", &mounts), Some("E1"));
        assert_eq!(serial_for_path("F:\\z.mdf", &mounts), None);
    }

    #[test]
    fn a_stored_file_reads_with_or_without_its_placement() {
        let bare: DatabaseFile = serde_json::from_str(
            r#"{"name":"d","file_id":1,"kind":"data","path":"E:\\d.mdf","size_mb":8}"#,
        )
        .unwrap();
        assert_eq!(bare.sdp, None);
        let joined: DatabaseFile = serde_json::from_str(
            r#"{"name":"d","kind":"log","path":"E:\\d.ldf","sdp_id":"134409","volume_id":3,
                "volume_name":"v","volume_scsi_sn":"1344090003","volume_group_id":2,
                "volume_group_name":null}"#,
        )
        .unwrap();
        assert_eq!(joined.file.kind, FileKind::Log);
        assert_eq!(joined.sdp.as_ref().unwrap().volume_id, 3);
        let again: DatabaseFile =
            serde_json::from_str(&serde_json::to_string(&joined).unwrap()).unwrap();
        assert_eq!(again, joined);
    }
}
