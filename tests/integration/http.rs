//! The little HTTP/1 the test servers speak: read one request, answer it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// One request as a test server saw it.
pub struct Request {
    /// The request line's target (`/path?query`).
    pub target: String,
    /// The `Authorization` header line, trimmed, if any.
    pub authorization: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// Reads one request (headers up to the blank line, then `Content-Length` bytes).
pub fn read_request(stream: &TcpStream) -> Request {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut authorization = None;
    let mut length = 0usize;
    let mut first = String::new();
    let _ = reader.read_line(&mut first);
    let target = first
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("authorization:") {
            authorization = Some(line.trim().to_owned());
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    Request {
        target,
        authorization,
        body,
    }
}

/// Answers with `status` and `body`, then closes.
pub fn respond(stream: &mut TcpStream, status: u16, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Serves on a free 127.0.0.1 port, answering each request with what
/// `answer` gives: (status, content type, body). Returns the base URL.
pub fn serve(answer: impl Fn(Request) -> (u16, &'static str, Vec<u8>) + Send + 'static) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (status, content_type, body) = answer(read_request(&stream));
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    url
}
