//! An HTTP endpoint on 127.0.0.1 that records every request (method, path, headers,
//! body, the status it answered): the far end of a webhook, Slack or Grafana service, an
//! incident or monitoring webhook, in tests that assert the request field by field. It
//! answers a fixed status and body, optionally 503 to the first requests (to prove a
//! sender retries).

use anyhow::{Context as _, Result};
use std::io::{BufRead, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request received.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The HTTP status answered.
    pub status: u16,
}

impl ReceivedRequest {
    /// The first header named `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// The recording endpoint; it stops with the test process.
pub struct HttpReceiver {
    port: u16,
    seen: Arc<Mutex<Vec<ReceivedRequest>>>,
}

/// What the endpoint answers.
#[derive(Clone)]
struct Answer {
    status: u16,
    body: String,
    /// Requests answered 503 first.
    fail_first: usize,
}

impl HttpReceiver {
    /// Listen on a free port of 127.0.0.1, answering `status` (and `{}`) to every request.
    pub fn start(status: u16) -> Result<HttpReceiver> {
        Self::listen(Answer {
            status,
            body: "{}".into(),
            fail_first: 0,
        })
    }

    /// Answer `status` with `body` (e.g. Slack's `{"ok":true}`).
    pub fn start_answering(status: u16, body: &str) -> Result<HttpReceiver> {
        Self::listen(Answer {
            status,
            body: body.into(),
            fail_first: 0,
        })
    }

    /// Answer 503 to the first `n` requests, then 200.
    pub fn start_failing_first(n: usize) -> Result<HttpReceiver> {
        Self::listen(Answer {
            status: 200,
            body: "{}".into(),
            fail_first: n,
        })
    }

    fn listen(answer: Answer) -> Result<HttpReceiver> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let seen: Arc<Mutex<Vec<ReceivedRequest>>> = Arc::default();
        let s = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let s = s.clone();
                let answer = answer.clone();
                std::thread::spawn(move || {
                    if let Err(e) = serve(stream, &answer, &s) {
                        eprintln!("test HTTP receiver: {e:#}");
                    }
                });
            }
        });
        Ok(HttpReceiver { port, seen })
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The requests received so far, in order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The requests whose body contains `needle`.
    pub fn containing(&self, needle: &str) -> Vec<ReceivedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| String::from_utf8_lossy(&r.body).contains(needle))
            .collect()
    }

    /// The JSON bodies of the requests answered with a 2xx status.
    pub fn delivered_json(&self) -> Vec<serde_json::Value> {
        self.requests()
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .map(ReceivedRequest::json)
            .collect()
    }
}

/// One HTTP/1.x request as read off the wire.
pub(crate) struct RawRequest {
    pub method: String,
    pub target: String,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    /// `Content-Length` bytes.
    pub body: Vec<u8>,
}

/// One HTTP/1.x request from `reader`. Shared by the test servers of this crate.
pub(crate) fn read_request(reader: &mut impl BufRead) -> Result<RawRequest> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().context("method")?.to_string();
    let target = parts.next().context("target")?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse::<usize>())
        .transpose()?
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Ok(RawRequest {
        method,
        target,
        headers,
        body,
    })
}

fn serve(stream: TcpStream, answer: &Answer, seen: &Mutex<Vec<ReceivedRequest>>) -> Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let RawRequest {
        method,
        target,
        headers,
        body,
    } = read_request(&mut reader)?;
    let (status, reply) = {
        let mut s = seen
            .lock()
            .map_err(|_| anyhow::anyhow!("receiver lock poisoned"))?;
        let status = if s.len() < answer.fail_first {
            503
        } else {
            answer.status
        };
        s.push(ReceivedRequest {
            method,
            target,
            headers,
            body,
            status,
        });
        (
            status,
            if status == 503 {
                "{}"
            } else {
                answer.body.as_str()
            },
        )
    };
    write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    )?;
    out.flush()?;
    Ok(())
}
