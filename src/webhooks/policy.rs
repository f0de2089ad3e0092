//! Where Flex may send webhooks. A webhook URL is chosen by an API client but fetched by
//! Flex from inside the network, so it must not reach what only Flex can: `https://`
//! anywhere public, `http://` only to loopback (a receiver beside Flex), and never a
//! link-local or cloud metadata address — checked when the URL is given, and again on every
//! delivery against what its name resolves to then (DNS may change after the check).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use reqwest::{
    Url,
    dns::{Addrs, Name, Resolve, Resolving},
};

/// Names of cloud metadata services.
const METADATA_NAMES: [&str; 3] = [
    "metadata.google.internal",
    "metadata.goog",
    "metadata.azure.internal",
];

/// Addresses Flex never delivers to: link-local (where the common cloud metadata services
/// answer, 169.254.169.254 and fe80::/10), the unspecified address, and the metadata
/// addresses outside link-local (Alibaba's 100.100.100.200, AWS's fd00:ec2::254).
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_link_local() || v4.is_unspecified() || v4 == Ipv4Addr::new(100, 100, 100, 200)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_forbidden(IpAddr::V4(v4));
            }
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.is_unspecified()
                || v6 == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254)
        }
    }
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The URL, if Flex may deliver to it; otherwise why not.
pub fn check_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|err| format!("'{text}' is not a URL: {err}"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(&url) => {}
        "http" => return Err("a webhook URL is https://, or http:// to loopback only".into()),
        other => return Err(format!("a webhook URL is https://, not {other}://")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a webhook URL carries no credentials; use the signing secret".into());
    }
    match url.host() {
        None => return Err("a webhook URL names a host".into()),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if METADATA_NAMES.contains(&name.as_str()) {
                return Err(format!("'{name}' is a cloud metadata service"));
            }
        }
        Some(url::Host::Ipv4(ip)) if is_forbidden(IpAddr::V4(ip)) => {
            return Err(format!("{ip} is a link-local or metadata address"));
        }
        Some(url::Host::Ipv6(ip)) if is_forbidden(IpAddr::V6(ip)) => {
            return Err(format!("{ip} is a link-local or metadata address"));
        }
        Some(_) => {}
    }
    Ok(url)
}

/// A resolver that drops forbidden addresses, and fails a name that has only those.
#[derive(Clone, Default)]
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| !is_forbidden(addr.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(
                    format!("'{host}' resolves only to link-local or metadata addresses").into(),
                );
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client deliveries use: no redirects (a redirect is a second URL nobody
/// checked), names resolved through [`GuardedResolver`].
pub fn client(timeout: std::time::Duration) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver))
        .build()
        .expect("the webhook HTTP client builds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_https_and_loopback_http_are_allowed() {
        for good in [
            "https://hooks.example.com/flex",
            "https://10.1.2.3:8443/in",
            "http://127.0.0.1:9000/hook",
            "http://localhost/hook",
            "http://[::1]:81/",
        ] {
            assert!(check_url(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("http://hooks.example.com/", "loopback"),
            ("ftp://hooks.example.com/", "ftp"),
            ("https://169.254.169.254/latest/meta-data", "link-local"),
            ("https://[fe80::1]/", "link-local"),
            ("https://[::ffff:169.254.169.254]/", "link-local"),
            ("https://100.100.100.200/", "metadata"),
            ("https://[fd00:ec2::254]/", "metadata"),
            ("https://metadata.google.internal./", "metadata"),
            ("https://0.0.0.0/", "link-local"),
            ("https://user:pw@hooks.example.com/", "credentials"),
            ("not a url", "not a URL"),
        ] {
            let err = check_url(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
