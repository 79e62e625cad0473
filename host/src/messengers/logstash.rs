//! `logstash`: a TCP connection to logstash's `json_lines` input, one JSON
//! document per line (a JSON-array payload is sent element by element),
//! reconnecting once when the connection broke since the last payload.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::{DeliveryError, Messenger, Payload};

/// Sends payloads as JSON lines over TCP.
#[derive(Debug)]
pub struct Logstash {
    address: String,
    timeout: Duration,
    stream: Option<TcpStream>,
}

impl Logstash {
    /// A messenger for `host:port`.
    pub fn new(host: &str, port: u16, timeout_secs: f64) -> Self {
        Self {
            address: format!("{host}:{port}"),
            timeout: crate::timeout::from_secs(timeout_secs),
            stream: None,
        }
    }

    fn connect(&self) -> std::io::Result<TcpStream> {
        let mut last = None;
        for addr in self.address.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, self.timeout) {
                Ok(stream) => {
                    stream.set_write_timeout(Some(self.timeout))?;
                    return Ok(stream);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("the address resolved to nothing")))
    }

    fn send(&mut self, lines: &[u8]) -> std::io::Result<()> {
        // A connection the peer closed since the last payload would swallow the
        // next write into the kernel buffer: check it before reusing it.
        let stream = match self.stream.take().filter(is_open) {
            Some(stream) => stream,
            None => self.connect()?,
        };
        let stream = self.stream.insert(stream);
        match stream.write_all(lines).and_then(|()| stream.flush()) {
            Ok(()) => Ok(()),
            Err(_) => {
                // The connection may have been closed since the last payload: once more, fresh.
                let mut fresh = self.connect()?;
                fresh.write_all(lines)?;
                fresh.flush()?;
                self.stream = Some(fresh);
                Ok(())
            }
        }
    }
}

/// Whether the peer has not closed the connection (nothing to read is fine).
fn is_open(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let open = match stream.peek(&mut [0u8; 1]) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).is_ok() && open
}

/// The payload as JSON lines: array elements one per line, else the payload's own lines.
fn json_lines(bytes: &[u8]) -> Vec<u8> {
    if let Ok(serde_json::Value::Array(items)) = serde_json::from_slice::<serde_json::Value>(bytes)
    {
        let mut out = Vec::new();
        for item in items {
            out.extend_from_slice(item.to_string().as_bytes());
            out.push(b'\n');
        }
        return out;
    }
    let mut out = bytes.to_vec();
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out
}

impl Messenger for Logstash {
    fn name(&self) -> String {
        format!("logstash {}", self.address)
    }

    fn deliver(&mut self, payload: &Payload<'_>) -> Result<(), DeliveryError> {
        let lines = json_lines(payload.bytes);
        self.send(&lines).map_err(|e| {
            self.stream = None;
            DeliveryError {
                messenger: self.name(),
                reason: format!("{e}; is logstash listening there (tcp input, codec json_lines)?"),
            }
        })
    }
}
