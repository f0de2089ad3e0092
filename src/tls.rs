//! Secure by default: `flex serve` on an address other hosts can reach carries bearer tokens,
//! so without a certificate of its own it makes a self-signed one, once, keeps it beside the
//! database and reuses it on every restart (clients pin it by its fingerprint, or trust the
//! file with `--ca-file`). Plain HTTP there needs `--plain-http`; loopback stays plain.

use std::{
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use rustls::pki_types::{CertificateDer, pem::PemObject};
use sha2::{Digest, Sha256};

use crate::config::{Config, TlsFiles};

const CERT_FILE: &str = "flex-tls-cert.pem";
const KEY_FILE: &str = "flex-tls-key.pem";

/// Gives `config` a self-signed certificate when it would otherwise serve plain HTTP to
/// other hosts. Returns the certificate's SHA-256 fingerprint when it did.
pub fn secure_by_default(
    config: &mut Config,
    listen: SocketAddr,
    plain_http: bool,
) -> io::Result<Option<String>> {
    if config.tls.is_some() || plain_http || listen.ip().is_loopback() {
        return Ok(None);
    }
    let dir = beside_database(&config.database_url);
    let files = TlsFiles {
        cert: dir.join(CERT_FILE),
        key: dir.join(KEY_FILE),
    };
    let made = if files.cert.exists() && files.key.exists() {
        false
    } else {
        make_self_signed(&files, listen)?;
        true
    };
    let fingerprint = fingerprint(&files.cert)?;
    tracing::info!(
        cert = %files.cert.display(),
        %fingerprint,
        made,
        "serving HTTPS with a self-signed certificate (give --tls-cert/--tls-key for your own, \
         or --plain-http)"
    );
    config.tls = Some(files);
    Ok(Some(fingerprint))
}

/// The folder of an SQLite database file; the working directory for anything else.
fn beside_database(database_url: &str) -> PathBuf {
    let file = crate::store::sqlite_file(database_url);
    match file.as_deref().and_then(Path::parent) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn make_self_signed(files: &TlsFiles, listen: SocketAddr) -> io::Result<()> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_owned());
        }
    }
    let certified = rcgen::generate_simple_self_signed(names).map_err(io::Error::other)?;
    write_private(&files.key, certified.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&files.cert, certified.cert.pem())
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

/// `SHA256:` and the certificate's DER digest in hex pairs, as browsers show it.
pub fn fingerprint(cert_pem: &Path) -> io::Result<String> {
    let der = CertificateDer::from_pem_file(cert_pem)
        .map_err(|err| io::Error::other(format!("{}: {err}", cert_pem.display())))?;
    let digest = Sha256::digest(der.as_ref());
    let pairs: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    Ok(format!("SHA256:{}", pairs.join(":")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_lives_beside_an_sqlite_file_and_in_the_working_directory_otherwise() {
        assert_eq!(
            beside_database("sqlite:///var/lib/flex/flex.db"),
            PathBuf::from("/var/lib/flex")
        );
        assert_eq!(
            beside_database("sqlite://data/flex.db?mode=rwc"),
            PathBuf::from("data")
        );
        assert_eq!(beside_database("sqlite://flex.db"), PathBuf::from("."));
        assert_eq!(beside_database("sqlite::memory:"), PathBuf::from("."));
        assert_eq!(beside_database("postgres://db/flex"), PathBuf::from("."));
    }
}
