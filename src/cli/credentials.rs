//! The tokens `flex login` keeps, one per server URL, in a per-user file only its owner can
//! read: `$FLEX_CONFIG`, else `$XDG_CONFIG_HOME/flex/credentials.json`, else
//! `~/.config/flex/credentials.json`.

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::api::CliError;

#[derive(Default, Serialize, Deserialize)]
struct CredentialsFile {
    #[serde(default)]
    servers: BTreeMap<String, StoredLogin>,
}

#[derive(Serialize, Deserialize)]
pub struct StoredLogin {
    pub token: String,
    pub user: String,
    /// As the server gave it (`YYYY-MM-DD HH:MM:SS`, UTC).
    #[serde(default)]
    pub expires_on: String,
}

pub fn path() -> Result<PathBuf, CliError> {
    if let Some(file) = std::env::var_os("FLEX_CONFIG").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(file));
    }
    let dir = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".config"),
            None => {
                return Err(CliError::Usage(
                    "no HOME to keep the login in; set FLEX_CONFIG to a file path".into(),
                ));
            }
        },
    };
    Ok(dir.join("flex").join("credentials.json"))
}

fn load(path: &Path) -> Result<CredentialsFile, CliError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|err| {
            CliError::Usage(format!(
                "{} is not a credentials file: {err}",
                path.display()
            ))
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(CredentialsFile::default()),
        Err(err) => Err(CliError::Usage(format!(
            "cannot read {}: {err}",
            path.display()
        ))),
    }
}

/// Writes the whole file anew beside the old one and renames it over, so a crash leaves
/// either file, and the token is never readable by others, not even for a moment.
fn save(path: &Path, file: &CredentialsFile) -> Result<(), CliError> {
    let failed =
        |err: std::io::Error| CliError::Usage(format!("cannot write {}: {err}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(failed)?;
    }
    let temporary = path.with_extension("json.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options.open(&temporary).map_err(failed)?;
    let bytes = serde_json::to_vec_pretty(file).expect("credentials serialize");
    out.write_all(&bytes).map_err(failed)?;
    out.sync_all().map_err(failed)?;
    drop(out);
    std::fs::rename(&temporary, path).map_err(failed)
}

pub fn stored_token(base_url: &str) -> Result<Option<String>, CliError> {
    let path = path()?;
    Ok(load(&path)?
        .servers
        .remove(base_url)
        .map(|login| login.token))
}

pub fn store(base_url: &str, login: StoredLogin) -> Result<PathBuf, CliError> {
    let path = path()?;
    let mut file = load(&path)?;
    file.servers.insert(base_url.to_owned(), login);
    save(&path, &file)?;
    Ok(path)
}

/// Whether there was a login to forget.
pub fn forget(base_url: &str) -> Result<bool, CliError> {
    let path = path()?;
    let mut file = load(&path)?;
    if file.servers.remove(base_url).is_none() {
        return Ok(false);
    }
    if file.servers.is_empty() {
        std::fs::remove_file(&path)
            .map_err(|err| CliError::Usage(format!("cannot remove {}: {err}", path.display())))?;
    } else {
        save(&path, &file)?;
    }
    Ok(true)
}
