//! What every black-box test shares: databases of their own ([`databases`]), the real server
//! in-process ([`server`]) or as a process ([`processes`]), the Echo rig of array and hosts
//! ([`rig`]), and test data ([`builders`]).

#![allow(dead_code)]

pub mod builders;
pub mod databases;
pub mod processes;
pub mod rig;
pub mod server;
pub mod sse;

use std::sync::Once;

pub use databases::{Backend, TestDb, postgres_url};
pub use processes::{ADMIN_TOKEN, http_client};
pub use rig::{Echo, Options};
pub use server::{TestServer, error_body};

pub fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = tracing_subscriber_init();
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn tracing_subscriber_init() -> Option<()> {
    // Logs only when asked (FLEX_TEST_LOG=debug), so failures stay readable.
    let level = std::env::var("FLEX_TEST_LOG").ok()?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_test_writer()
        .try_init()
        .ok()
}
