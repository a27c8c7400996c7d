//! The WebSocket handshake (RFC 6455 over HTTP/1.1), done here rather than by axum's
//! extractor so the connection keeps its raw shared socket (see `socket`).

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use tokio_tungstenite::tungstenite;

use crate::net::socket::Peer;
use crate::state::AppState;

/// `GET /ws`: checks the WebSocket handshake (RFC 6455, HTTP/1.1) and upgrades.
pub async fn upgrade(State(app): State<AppState>, mut request: Request) -> Response {
    let key = match handshake_key(&request) {
        Ok(key) => key,
        Err((status, message)) => return (status, message).into_response(),
    };
    let Some(peer) = request.extensions().get::<ConnectInfo<Peer>>().cloned() else {
        // Only `confab_server::serve` gives a handler the connection's socket.
        tracing::error!(
            "/ws reached without the shared socket: serve the router with confab_server::serve"
        );
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "websocket unavailable on this listener",
        )
            .into_response();
    };
    let Some(on_upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        return (StatusCode::UPGRADE_REQUIRED, "connection not upgradable").into_response();
    };
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let socket = peer.0.socket;
                match unread_bytes(upgraded).await {
                    Ok(part) => super::connection(app, socket, part).await,
                    Err(e) => tracing::debug!(error = %e, "upgraded connection failed"),
                }
            }
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
    });
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(value) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
    }
    response
}

/// The `Sec-WebSocket-Key` of a valid upgrade request, or why it is not one.
fn handshake_key(request: &Request) -> Result<HeaderValue, (StatusCode, &'static str)> {
    let headers = request.headers();
    if request.version() > Version::HTTP_11 {
        return Err((
            StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            "WebSocket needs HTTP/1.1",
        ));
    }
    if request.method() != Method::GET {
        return Err((StatusCode::METHOD_NOT_ALLOWED, "WebSocket upgrades use GET"));
    }
    if !header_has_token(headers, header::CONNECTION, "upgrade") {
        return Err((
            StatusCode::BAD_REQUEST,
            "Connection header must contain `upgrade`",
        ));
    }
    if !header_has_token(headers, header::UPGRADE, "websocket") {
        return Err((
            StatusCode::BAD_REQUEST,
            "Upgrade header must be `websocket`",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err((StatusCode::BAD_REQUEST, "Sec-WebSocket-Version must be 13"));
    }
    headers
        .get(header::SEC_WEBSOCKET_KEY)
        .cloned()
        .ok_or((StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing"))
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// Bytes the HTTP layer read past the upgrade request (a client may send its first frame
/// in the same packet). They come first from the upgraded stream, so it is read without
/// waiting until it has none; after that the shared socket is read directly.
async fn unread_bytes(upgraded: hyper::upgrade::Upgraded) -> std::io::Result<Vec<u8>> {
    use hyper::rt::Read;
    let mut upgraded = upgraded;
    let mut part = Vec::new();
    let mut chunk = [0u8; 4096];
    let waker = futures_util::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    loop {
        let mut buf = hyper::rt::ReadBuf::new(&mut chunk);
        match std::pin::Pin::new(&mut upgraded).poll_read(&mut cx, buf.unfilled()) {
            std::task::Poll::Ready(Ok(())) => {
                let n = buf.filled().len();
                if n == 0 {
                    return Ok(part);
                }
                part.extend_from_slice(&chunk[..n]);
            }
            std::task::Poll::Ready(Err(e)) => return Err(e),
            std::task::Poll::Pending => return Ok(part),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(edit: impl FnOnce(&mut axum::http::request::Builder)) -> Request {
        let mut builder = Request::builder()
            .method(Method::GET)
            .uri("/ws")
            .header(header::CONNECTION, "keep-alive, Upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_VERSION, "13")
            .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==");
        edit(&mut builder);
        builder.body(Body::empty()).expect("request")
    }

    fn without(name: header::HeaderName) -> Request {
        let mut r = request(|_| {});
        r.headers_mut().remove(name);
        r
    }

    #[test]
    fn a_valid_upgrade_gives_its_key() {
        let key = handshake_key(&request(|_| {})).expect("valid");
        assert_eq!(key, "dGhlIHNhbXBsZSBub25jZQ==");
        // RFC 6455's example answer.
        assert_eq!(
            tungstenite::handshake::derive_accept_key(key.as_bytes()),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn anything_else_is_refused_with_its_reason() {
        let cases = [
            (without(header::CONNECTION), StatusCode::BAD_REQUEST),
            (without(header::UPGRADE), StatusCode::BAD_REQUEST),
            (
                without(header::SEC_WEBSOCKET_VERSION),
                StatusCode::BAD_REQUEST,
            ),
            (without(header::SEC_WEBSOCKET_KEY), StatusCode::BAD_REQUEST),
        ];
        for (request, status) in cases {
            assert_eq!(handshake_key(&request).map_err(|e| e.0), Err(status));
        }
        let mut post = request(|_| {});
        *post.method_mut() = Method::POST;
        assert_eq!(
            handshake_key(&post).map_err(|e| e.0),
            Err(StatusCode::METHOD_NOT_ALLOWED)
        );
        let mut old = request(|_| {});
        old.headers_mut()
            .insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        assert!(handshake_key(&old).is_err());
        let mut h2 = request(|_| {});
        *h2.version_mut() = Version::HTTP_2;
        assert_eq!(
            handshake_key(&h2).map_err(|e| e.0),
            Err(StatusCode::HTTP_VERSION_NOT_SUPPORTED)
        );
        // "Upgrade" as part of another token is not the upgrade token.
        let mut sneaky = request(|_| {});
        sneaky
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("no-upgrade"));
        assert!(handshake_key(&sneaky).is_err());
    }
}
