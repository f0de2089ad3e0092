//! Flex's vocabulary: the states, kinds and codes every layer speaks (API, store, executor,
//! workflows, metrics), and the typed documents the store keeps in JSON columns. One
//! definition of each, so the wire, the database and the code cannot drift apart: each enum's
//! strings are written once, in its [`wire_enum!`] declaration, and used for JSON, SQL and logs.

mod echo;
mod event;
mod inventory;
mod task;

pub use echo::{
    ConsistencyLevel, EchoVolume, LedgerKind, Lifecycle, SourceDb, SourceFile, TargetState,
    VgSnapshot,
};
pub use event::EventType;
pub use inventory::{
    DatabaseFile, FileKind, HostFacts, InventoryDatabase, InventoryFile, MountPoint, SdpHostName,
    SdpPlacement, serial_for_path,
};
pub use task::{CommandType, Phase, StepDetail, StepDirection, TaskState};

/// A string that is not one of an enum's values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not a {kind} (one of {expected})")]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
    pub expected: String,
}

/// Declares an enum whose values travel as fixed strings: `as_str`, `parse`, `FromStr`,
/// `Display`, and serde (as the string), from one list of `Variant = "wire"` pairs.
#[macro_export]
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($kind:literal) {
            $( $(#[$variant_meta:meta])* $variant:ident = $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $( $(#[$variant_meta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Every value's string, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($wire),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($wire => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::model::UnknownValue;

            fn from_str(text: &str) -> Result<$name, Self::Err> {
                $name::parse(text).ok_or_else(|| $crate::model::UnknownValue {
                    kind: $kind,
                    value: text.to_owned(),
                    expected: $name::NAMES.join(", "),
                })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
                $name::parse(&text)
                    .ok_or_else(|| serde::de::Error::unknown_variant(&text, $name::NAMES))
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_enums_round_trip_through_every_form() {
        for state in TaskState::ALL {
            assert_eq!(TaskState::parse(state.as_str()), Some(*state));
            assert_eq!(state.to_string(), state.as_str());
            let json = serde_json::to_string(state).unwrap();
            assert_eq!(serde_json::from_str::<TaskState>(&json).unwrap(), *state);
        }
        let err = "sleeping".parse::<TaskState>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "'sleeping' is not a task state (one of running, completed, failed, aborted)"
        );
        assert!(serde_json::from_str::<CommandType>("\"RebootCommand\"").is_err());
    }
}
