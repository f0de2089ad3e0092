//! Serving connections, plain or TLS: TCP_NODELAY on every socket, a bound on concurrent
//! connections, a timeout on reading a request's headers (so a client that trickles them a
//! byte at a time cannot hold a connection), and a graceful stop that gives in-flight requests
//! a grace period.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::Router;
use axum_server::{accept::Accept, tls_rustls::RustlsConfig};
use hyper_util::rt::TokioTimer;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
};

/// How long in-flight requests may take to finish once shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What bounds the connections a server holds.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections served at once (agent sockets included); more are closed at once.
    pub max_connections: usize,
    /// A request's headers must have arrived within this long.
    pub header_read_timeout: Duration,
}

/// Accepts a connection only while a slot is free; the slot is the connection's until it
/// closes. Sets TCP_NODELAY: agent sockets carry small messages back to back (a command right
/// after another), which Nagle's algorithm would hold for the peer's delayed ACK.
#[derive(Clone)]
struct Bounded {
    slots: Arc<Semaphore>,
}

impl<S: Send + 'static> Accept<TcpStream, S> for Bounded {
    type Stream = Slotted;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Slotted, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            tracing::warn!("too many connections; closing a new one (--max-connections)");
            return std::future::ready(Err(io::Error::other("too many connections")));
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        std::future::ready(Ok((
            Slotted {
                stream,
                _slot: slot,
            },
            service,
        )))
    }
}

/// A connection holding its slot.
struct Slotted {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for Slotted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Slotted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until `shutdown` resolves; then
/// stops accepting and gives in-flight requests [`SHUTDOWN_GRACE`].
pub async fn serve(
    app: Router,
    listener: TcpListener,
    tls: Option<RustlsConfig>,
    limits: &Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let handle = axum_server::Handle::new();
    let stopping = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopping.graceful_shutdown(Some(SHUTDOWN_GRACE));
    });
    let bounded = Bounded {
        slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
    };
    let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let listener = listener.into_std()?;
    match tls {
        None => {
            let mut server = axum_server::from_tcp(listener)?
                .acceptor(bounded)
                .handle(handle)
                .first_request_timeout(limits.header_read_timeout);
            bound_headers(server.http_builder(), limits);
            server.serve(service).await
        }
        Some(config) => {
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config).acceptor(bounded);
            let mut server = axum_server::from_tcp(listener)?
                .acceptor(acceptor)
                .handle(handle)
                .first_request_timeout(limits.header_read_timeout);
            bound_headers(server.http_builder(), limits);
            server.serve(service).await
        }
    }
}

/// Headers of every request after a connection's first (which `first_request_timeout`
/// bounds) must arrive within the same time.
fn bound_headers(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    limits: &Limits,
) {
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
}
