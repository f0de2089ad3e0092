//! Database names where ids are asked: people know `sales`, the API wants `5`. Resolved
//! through the host's databases; an id wins over a name, a name must pick one database.

use serde_json::Value;

use super::api::{Api, CliError, segment};

pub struct HostDatabases {
    host: String,
    databases: Vec<(String, String)>,
}

impl HostDatabases {
    pub async fn of(api: &Api, host: &str) -> Result<HostDatabases, CliError> {
        let listed = api
            .get(&format!("/api/v1/hosts/{}/databases", segment(host)), &[])
            .await?;
        let databases = listed
            .as_array()
            .into_iter()
            .flatten()
            .map(|db| {
                let field = |name| db.get(name).and_then(Value::as_str).unwrap_or_default();
                (field("id").to_owned(), field("name").to_owned())
            })
            .collect();
        Ok(HostDatabases {
            host: host.to_owned(),
            databases,
        })
    }

    /// The id of `id_or_name`. One the host does not list is passed on as it is, so the
    /// server refuses it with its own code (`DB_NOT_FOUND`).
    pub fn id(&self, id_or_name: &str) -> Result<String, CliError> {
        if self.databases.iter().any(|(id, _)| id == id_or_name) {
            return Ok(id_or_name.to_owned());
        }
        let mut named: Vec<&(String, String)> = self
            .databases
            .iter()
            .filter(|(_, name)| name == id_or_name)
            .collect();
        if named.is_empty() {
            // SQL Server compares names without case by default.
            named = self
                .databases
                .iter()
                .filter(|(_, name)| name.eq_ignore_ascii_case(id_or_name))
                .collect();
        }
        match named.as_slice() {
            [] => Ok(id_or_name.to_owned()),
            [(id, _)] => Ok(id.clone()),
            several => Err(CliError::Usage(format!(
                "'{id_or_name}' names {} databases on {}: {}; give the id",
                several.len(),
                self.host,
                several
                    .iter()
                    .map(|(id, name)| format!("{id} ({name})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    pub fn ids(&self, ids_or_names: &[String]) -> Result<Vec<String>, CliError> {
        ids_or_names.iter().map(|raw| self.id(raw)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostDatabases {
        HostDatabases {
            host: "dev-01".into(),
            databases: vec![
                ("5".into(), "sales".into()),
                ("6".into(), "hr".into()),
                ("7".into(), "copy".into()),
                ("8".into(), "COPY".into()),
                ("9".into(), "6".into()),
            ],
        }
    }

    #[test]
    fn ids_win_then_exact_names_then_names_without_case() {
        let host = host();
        assert_eq!(host.id("5").unwrap(), "5");
        assert_eq!(
            host.id("6").unwrap(),
            "6",
            "an id wins over a database named 6"
        );
        assert_eq!(host.id("sales").unwrap(), "5");
        assert_eq!(host.id("SALES").unwrap(), "5");
        assert_eq!(host.id("copy").unwrap(), "7", "the exact name wins");
        assert_eq!(
            host.id("nope").unwrap(),
            "nope",
            "left for the server to refuse"
        );
    }

    #[test]
    fn an_ambiguous_name_is_a_usage_error_listing_the_candidates() {
        let err = host().id("Copy").unwrap_err();
        let CliError::Usage(message) = &err else {
            panic!("{err:?}")
        };
        assert!(
            message.contains("7 (copy)") && message.contains("8 (COPY)"),
            "{message}"
        );
    }
}
