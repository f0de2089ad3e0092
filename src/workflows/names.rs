//! The names Flex gives the SDP objects it makes, and how reconcile knows them again.
//!
//! A name carries the task's short id, so a step that runs again finds what its first run
//! made, and this deployment's tag, so that an object no ledger row holds can be told to be
//! this deployment's orphan rather than another deployment's object on the same array. Tasks
//! created before the deployment was tagged keep the untagged names they started with.

use crate::{executor::TaskRef, store::Deployment};

/// Prefix of every thin clone Flex makes.
const CLONE_PREFIX: &str = "echo-";
const SHORT_ID_LEN: usize = 8;

/// The naming rules of this deployment.
#[derive(Clone, Debug)]
pub struct ObjectNames {
    deployment: Deployment,
}

/// Who made an array object, as far as its name tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Maker {
    /// This deployment, in the task with that short id.
    Us { task_short_id: String },
    /// A Flex from before deployment tags (this one or another: the name cannot tell).
    Untagged { task_short_id: String },
    /// Another Flex deployment, with that tag.
    Other { tag: String },
}

/// The short, stable token of a task that its object names carry.
pub fn short_id(request_id: &str) -> String {
    request_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(SHORT_ID_LEN)
        .collect::<String>()
        .to_lowercase()
}

fn is_short_id(part: &str) -> bool {
    part.len() == SHORT_ID_LEN
        && part
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn is_tag(part: &str) -> bool {
    part.len() == crate::store::TAG_LEN
        && part
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn is_number(part: &str) -> bool {
    !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit())
}

impl ObjectNames {
    pub fn new(deployment: Deployment) -> ObjectNames {
        ObjectNames { deployment }
    }

    pub fn tag(&self) -> &str {
        &self.deployment.tag
    }

    /// Whether the task names its objects with the tag: tasks created once the deployment
    /// was tagged do (`create_ts` is in whole seconds, so the second of tagging counts).
    fn tags(&self, task: &TaskRef) -> bool {
        task.create_ts >= self.deployment.tagged_since_ms.div_euclid(1000)
    }

    /// The thin clone of source volume `source_volume` for the task's destination `dest`.
    pub fn clone_volume(
        &self,
        task: &TaskRef,
        short_id: &str,
        dest: usize,
        source_volume: u64,
    ) -> String {
        if self.tags(task) {
            format!(
                "{CLONE_PREFIX}{}-{short_id}-{dest}-{source_volume}",
                self.tag()
            )
        } else {
            format!("{CLONE_PREFIX}{short_id}-{dest}-{source_volume}")
        }
    }

    /// The short name of the task's snapshot of one volume group.
    pub fn vg_snapshot(&self, task: &TaskRef, prefix: &str, short_id: &str) -> String {
        if self.tags(task) {
            format!("{prefix}-{}-{short_id}", self.tag())
        } else {
            format!("{prefix}-{short_id}")
        }
    }

    /// Who made a volume of that name, when it is named the way Flex names thin clones.
    pub fn volume_maker(&self, name: &str) -> Option<Maker> {
        let rest = name.strip_prefix(CLONE_PREFIX)?;
        let parts: Vec<&str> = rest.split('-').collect();
        match parts.as_slice() {
            [tag, short, dest, vol]
                if is_tag(tag) && is_short_id(short) && is_number(dest) && is_number(vol) =>
            {
                Some(if *tag == self.tag() {
                    Maker::Us {
                        task_short_id: (*short).to_owned(),
                    }
                } else {
                    Maker::Other {
                        tag: (*tag).to_owned(),
                    }
                })
            }
            [short, dest, vol] if is_short_id(short) && is_number(dest) && is_number(vol) => {
                Some(Maker::Untagged {
                    task_short_id: (*short).to_owned(),
                })
            }
            _ => None,
        }
    }

    /// The short id of this deployment's task that made a snapshot of that short name, if
    /// one did. A snapshot's prefix is the user's, so an untagged name or another tag cannot
    /// be told from an operator's snapshot and is not claimed.
    pub fn snapshot_task(&self, short_name: &str) -> Option<String> {
        let mut parts = short_name.rsplitn(3, '-');
        let short = parts.next()?;
        let tag = parts.next()?;
        let prefix = parts.next()?;
        (!prefix.is_empty() && tag == self.tag() && is_short_id(short)).then(|| short.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> ObjectNames {
        ObjectNames::new(Deployment {
            tag: "k3x9q2".into(),
            tagged_since_ms: 1_700_000_000_500,
        })
    }

    fn task(create_ts: i64) -> TaskRef {
        TaskRef {
            request_id: "AbCdEfGh1234".into(),
            ref_id: String::new(),
            create_ts,
        }
    }

    #[test]
    fn tasks_from_the_tagging_second_on_use_the_tag() {
        let names = names();
        assert_eq!(
            names.clone_volume(&task(1_700_000_000), "abcdefgh", 0, 12),
            "echo-k3x9q2-abcdefgh-0-12"
        );
        assert_eq!(
            names.clone_volume(&task(1_699_999_999), "abcdefgh", 0, 12),
            "echo-abcdefgh-0-12"
        );
        assert_eq!(
            names.vg_snapshot(&task(1_700_000_001), "nightly-sales", "abcdefgh"),
            "nightly-sales-k3x9q2-abcdefgh"
        );
        assert_eq!(
            names.vg_snapshot(&task(1_600_000_000), "nightly", "abcdefgh"),
            "nightly-abcdefgh"
        );
    }

    #[test]
    fn names_tell_who_made_them() {
        let names = names();
        let made = names.clone_volume(&task(1_700_000_000), "abcdefgh", 1, 7);
        assert_eq!(
            names.volume_maker(&made),
            Some(Maker::Us {
                task_short_id: "abcdefgh".into()
            })
        );
        assert_eq!(
            names.volume_maker("echo-zzzzzz-abcdefgh-1-7"),
            Some(Maker::Other {
                tag: "zzzzzz".into()
            })
        );
        assert_eq!(
            names.volume_maker("echo-abcdefgh-1-7"),
            Some(Maker::Untagged {
                task_short_id: "abcdefgh".into()
            })
        );
        for theirs in ["echo-data-1", "sales_data", "echo-k3x9q2-abc-1-7", "echo-"] {
            assert_eq!(names.volume_maker(theirs), None, "{theirs}");
        }
        let snapshot = names.vg_snapshot(&task(1_700_000_000), "pre-release", "abcdefgh");
        assert_eq!(names.snapshot_task(&snapshot).as_deref(), Some("abcdefgh"));
        for theirs in [
            "pre-release-abcdefgh",
            "x-zzzzzz-abcdefgh",
            "-k3x9q2-abcdefgh",
        ] {
            assert_eq!(names.snapshot_task(theirs), None, "{theirs}");
        }
    }
}
