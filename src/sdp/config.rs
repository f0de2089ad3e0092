//! Where the array is and how to reach it: what `flex serve`'s `--sdp-*` flags become.

use std::{path::PathBuf, time::Duration};

/// Where the array is and how to reach it.
#[derive(Clone, Debug)]
pub struct SdpConfig {
    /// `https://sdp.example` (the client appends `/api/v2`); `http://` only for loopback.
    pub url: String,
    pub user: String,
    pub password: String,
    /// Trust only this CA (PEM) instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification (arrays often run self-signed certificates).
    pub insecure: bool,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

impl SdpConfig {
    pub fn new(url: &str, user: &str, password: &str) -> SdpConfig {
        SdpConfig {
            url: url.to_owned(),
            user: user.to_owned(),
            password: password.to_owned(),
            ca_file: None,
            insecure: false,
            connect_timeout: crate::defaults::SDP_CONNECT_TIMEOUT,
            request_timeout: crate::defaults::SDP_TIMEOUT,
        }
    }
}
