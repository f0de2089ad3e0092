//! The HTTP side of the CLI: one client per invocation, stamping the token and the operation
//! id on every request, and turning each answer into a result or into the error (and exit
//! code) a pipeline branches on.

use std::{fmt, time::Duration};

use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

use super::{Exit, args::ClientArgs, credentials};

/// Longest wait for an ordinary answer; a long poll asks for at most 30 s of it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_REF_ID_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("usage: {0}")]
    Usage(String),
    /// The server refused the request; the code and ref id are what to quote.
    #[error("refused ({status}): {code}: {message} (ref id {ref_id})")]
    Refused {
        status: u16,
        code: String,
        message: String,
        ref_id: String,
    },
    /// A dry run found issues; they were printed already.
    #[error("the request would be refused: {0}")]
    Invalid(String),
    #[error("server error ({status}): {code}: {message} (ref id {ref_id})")]
    Server {
        status: u16,
        code: String,
        message: String,
        ref_id: String,
    },
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
}

impl CliError {
    pub fn exit(&self) -> Exit {
        match self {
            CliError::Usage(_) => Exit::Usage,
            CliError::Refused { .. } | CliError::Invalid(_) => Exit::Refused,
            CliError::Server { .. } | CliError::Unreachable { .. } => Exit::Unreachable,
        }
    }
}

/// A Flex server, as seen by one CLI invocation.
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    ref_id: String,
    /// Whether the operation id was generated here (and so must be shown to be quotable).
    pub ref_id_generated: bool,
}

impl Api {
    pub fn new(args: &ClientArgs) -> Result<Api, CliError> {
        let base = normalize_url(&args.url)?;
        let (ref_id, ref_id_generated) = match &args.ref_id {
            Some(ref_id) => (valid_ref_id(ref_id)?, false),
            None => (generated_ref_id(), true),
        };
        let token = match &args.token {
            Some(token) if !token.is_empty() => Some(token.clone()),
            _ => credentials::stored_token(&base)?,
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("flex-cli/", env!("CARGO_PKG_VERSION")))
            .tls_danger_accept_invalid_certs(args.insecure);
        if let Some(ca_file) = &args.ca_file {
            let pem = std::fs::read(ca_file).map_err(|err| {
                CliError::Usage(format!(
                    "cannot read --ca-file {}: {err}",
                    ca_file.display()
                ))
            })?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|err| CliError::Usage(format!("invalid --ca-file: {err}")))?;
            builder = builder.tls_certs_only(certificates);
        }
        let http = builder
            .build()
            .map_err(|err| CliError::Usage(format!("cannot make an HTTP client: {err}")))?;
        Ok(Api {
            http,
            base,
            token,
            ref_id,
            ref_id_generated,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn ref_id(&self) -> &str {
        &self.ref_id
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, CliError> {
        let request = self.request(Method::GET, path).query(query);
        self.answer(path, request.send().await).await
    }

    /// A request with a JSON body (or none); `Value::Null` for an empty answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CliError> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.answer(path, request.send().await).await
    }

    /// The login form; no token is sent.
    pub async fn login(&self, user: &str, password: &str) -> Result<Value, CliError> {
        let path = "/api/v1/auth/local/login";
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .timeout(REQUEST_TIMEOUT)
            .header("hs-ref-id", &self.ref_id)
            .form(&[("username", user), ("password", password)]);
        match self.answer(path, request.send().await).await {
            // Not a token problem: the name or the password is wrong.
            Err(CliError::Refused {
                status: 401,
                ref_id,
                ..
            }) => Err(CliError::Refused {
                status: 401,
                code: "UNAUTHORIZED".into(),
                message: format!("user '{user}' and that password are not accepted"),
                ref_id,
            }),
            answer => answer,
        }
    }

    /// A request whose answer the caller reads itself (the event stream): no overall timeout.
    pub async fn open(&self, path: &str, query: &[(&str, String)]) -> Result<Response, CliError> {
        let mut request = self
            .http
            .get(format!("{}{path}", self.base))
            .query(query)
            .header("hs-ref-id", &self.ref_id)
            .header("accept", "text/event-stream");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request.send().await.map_err(|err| self.unreachable(&err))
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(REQUEST_TIMEOUT)
            .header("hs-ref-id", &self.ref_id);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request
    }

    async fn answer(
        &self,
        path: &str,
        sent: Result<Response, reqwest::Error>,
    ) -> Result<Value, CliError> {
        let response = sent.map_err(|err| self.unreachable(&err))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|err| self.unreachable(&err))?;
        if status.is_success() {
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text).map_err(|err| CliError::Server {
                status: status.as_u16(),
                code: "INVALID_RESPONSE".into(),
                message: format!("{path} answered something that is not JSON: {err}"),
                ref_id: self.ref_id.clone(),
            });
        }
        Err(self.refusal(status, &text))
    }

    /// The error of a non-2xx answer, from the server's JSON error body where it sent one.
    pub fn refusal(&self, status: StatusCode, text: &str) -> CliError {
        let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let field = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
        let code = field("code").unwrap_or_else(|| format!("HTTP_{}", status.as_u16()));
        let mut message =
            field("message").unwrap_or_else(|| text.trim().chars().take(200).collect());
        let ref_id = field("ref_id").unwrap_or_else(|| self.ref_id.clone());
        if status == StatusCode::UNAUTHORIZED {
            message.push_str(if self.token.is_some() {
                " (the token is not valid here or has expired: run `flex login` or set FLEX_TOKEN)"
            } else {
                " (no token: run `flex login`, or set FLEX_TOKEN or --token)"
            });
        }
        if status.is_server_error() {
            CliError::Server {
                status: status.as_u16(),
                code,
                message,
                ref_id,
            }
        } else {
            CliError::Refused {
                status: status.as_u16(),
                code,
                message,
                ref_id,
            }
        }
    }

    pub fn unreachable(&self, err: &reqwest::Error) -> CliError {
        // The chain carries the useful part (connection refused, certificate unknown …).
        let mut reason = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            reason = format!("{reason}: {cause}");
            source = cause.source();
        }
        CliError::Unreachable {
            url: self.base.clone(),
            reason,
        }
    }
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token.
        f.debug_struct("Api")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// The base URL as stored and compared: scheme and authority, no trailing slash.
pub fn normalize_url(raw: &str) -> Result<String, CliError> {
    let url = url::Url::parse(raw)
        .map_err(|err| CliError::Usage(format!("--url '{raw}' is not a URL: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(CliError::Usage(format!(
            "--url '{raw}' must start with http:// or https://"
        )));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Ten letters and digits, as the server makes them when a client sends none.
fn generated_ref_id() -> String {
    use rand::{Rng, distr::Alphanumeric};
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(10)
        .map(char::from)
        .collect()
}

fn valid_ref_id(raw: &str) -> Result<String, CliError> {
    if (1..=MAX_REF_ID_LEN).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(raw.to_owned())
    } else {
        Err(CliError::Usage(format!(
            "--ref-id '{raw}' must be 1 to 32 letters or digits"
        )))
    }
}

/// A path segment as the URL needs it (ids are opaque to the client).
pub fn segment(raw: &str) -> String {
    url::form_urlencoded::byte_serialize(raw.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
