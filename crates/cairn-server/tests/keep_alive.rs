//! A response that leaves its request's body unread (a refusal) over a real HTTP/1.1
//! connection: the next request on the same connection is answered, or the response
//! said `Connection: close` — the connection never drops under a client that reuses it.

use std::time::Duration;

use cairn_registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Server {
    _dir: tempfile::TempDir,
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    /// A server that enforces authentication: an anonymous write is refused with 401
    /// before anything reads its body.
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open_local(dir.path()).await.unwrap();
        let options = cairn_server::ServerOptions {
            access: cairn_server::AccessOptions { enforce: true },
            ..Default::default()
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            cairn_server::serve(registry, &options, listener, shutdown)
                .await
                .unwrap();
        });
        Self {
            _dir: dir,
            addr,
            stop: Some(stop),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Reads one response: its head (lower-cased) and body, or None when the connection
/// ends first.
async fn response(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("the server answers within 5 s");
        match read {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    Some((head, body))
}

async fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(server.addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Sends an anonymous write whose head ends with `rest` on a new connection; answers
/// the head of the first response, which must be the 401 refusal.
async fn refusal(server: &Server, rest: &str) -> String {
    let mut stream = connect(server).await;
    let request = format!(
        "POST /api/v1/models HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{rest}"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let (head, _) = response(&mut stream).await.expect("the refusal arrives");
    assert!(head.starts_with("http/1.1 401"), "{head}");
    head
}

const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";

#[tokio::test]
async fn a_refused_write_whose_body_arrives_late_keeps_the_connection() {
    let server = Server::start().await;
    let mut stream = connect(&server).await;
    let body = br#"{"name": "m1"}"#;
    for round in 0..3 {
        // The head alone, then the body once the server has had time to refuse it.
        let head = format!(
            "POST /api/v1/models HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        stream.write_all(body).await.unwrap();
        let (head, _) = response(&mut stream).await.expect("the refusal arrives");
        assert!(head.starts_with("http/1.1 401"), "{head}");
        assert!(!head.contains("connection: close"), "round {round}: {head}");
        stream.write_all(HEALTH).await.unwrap();
        let (head, body) = response(&mut stream)
            .await
            .unwrap_or_else(|| panic!("round {round}: the connection dropped after a refusal"));
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert_eq!(body, b"ok");
    }
}

#[tokio::test]
async fn a_refused_large_body_is_not_read_and_the_response_says_close() {
    let server = Server::start().await;
    let started = std::time::Instant::now();
    // 64 MiB declared, none of it sent: the refusal must not wait for it.
    let head = refusal(&server, "Content-Length: 67108864\r\n\r\n{").await;
    assert!(head.contains("connection: close"), "{head}");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "it waited for the body"
    );
}

#[tokio::test]
async fn a_client_waiting_for_continue_is_refused_without_being_asked_for_the_body() {
    let server = Server::start().await;
    // The first response must be the refusal, not `100 Continue`.
    let head = refusal(
        &server,
        "Content-Length: 14\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;
    assert!(head.contains("connection: close"), "{head}");
}

#[tokio::test]
async fn a_body_the_handler_reads_keeps_the_connection_as_before() {
    let server = Server::start().await;
    let mut stream = connect(&server).await;
    // Health checks take no body; a GET with one is read and discarded by the drain.
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    let (head, _) = response(&mut stream).await.expect("an answer");
    assert!(
        head.starts_with("http/1.1 200") && !head.contains("connection: close"),
        "{head}"
    );
    stream.write_all(HEALTH).await.unwrap();
    assert!(response(&mut stream).await.is_some());
}
