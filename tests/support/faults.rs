//! A fault-injecting reverse proxy on 127.0.0.1 in front of the emulator:
//! latency on every call; an action answered with throttling, a 5xx or a
//! reset connection N times; the DB proxy held at `creating` and its target
//! at REGISTERING or UNAVAILABLE for the next N answers that show them
//! (counted, not timed, so a slow machine sees the same sequence). It also
//! counts the calls of each action, faulted ones included. One request per
//! connection (it answers `Connection: close`), which the SDK's client
//! handles by opening a new one.
//!
//! Only faults live here. How AWS behaves (a proxy `creating` for a time,
//! target health from the wiring, errors) is the emulator's, in
//! localstack/awsrules.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// The service's throttling error (HTTP 400/429 with its code).
    Throttle,
    /// HTTP 503 Service Unavailable.
    Unavailable,
    /// Close the connection without an answer.
    Reset,
}

#[derive(Default)]
struct Plan {
    latency: Duration,
    faults: Vec<(String, Fault, usize)>,
    proxy_creating: usize,
    target_held: Option<(usize, &'static str, Option<&'static str>)>,
    calls: BTreeMap<String, usize>,
    /// Calls being answered now, and the most at once since the last reset.
    in_flight: usize,
    max_in_flight: usize,
    /// AWS's throttling: the actions that start with a prefix, each with
    /// a token bucket of its own (per second, burst).
    rates: Vec<(String, f64, f64)>,
    /// Each action's bucket: tokens, last refill.
    buckets: BTreeMap<String, (f64, std::time::Instant)>,
    /// Answers throttled so far (by `fail` or by a rate).
    throttled: usize,
    /// When recording: each call's arrival and action.
    timeline: Option<Vec<(std::time::Instant, String)>>,
    /// Each call of a REST protocol (S3's, Lambda's): its service (from
    /// its signature's scope), method, path and query, which name the
    /// operation.
    rest: Vec<String>,
}

#[derive(Clone)]
pub struct FaultProxy {
    pub url: String,
    plan: Arc<Mutex<Plan>>,
}

impl FaultProxy {
    pub fn start(upstream: &str) -> FaultProxy {
        let upstream = upstream
            .strip_prefix("http://")
            .expect("http upstream")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        // Room for a fleet's first round: the standard library listens
        // with a queue of 128, past which the kernel drops connections and
        // each client tries again a second (then 3, 7 s) later.
        {
            use std::os::fd::AsRawFd;
            // SAFETY: listen(2) on a socket this function owns.
            assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 4096) }, 0);
        }
        let url = format!("http://{}", listener.local_addr().unwrap());
        let plan = Arc::new(Mutex::new(Plan::default()));
        let shared = plan.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (plan, upstream) = (shared.clone(), upstream.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &upstream, &plan);
                });
            }
        });
        FaultProxy { url, plan }
    }

    pub fn latency(&self, d: Duration) {
        self.plan.lock().unwrap().latency = d;
    }

    /// Answers the next `times` calls of `action` with `fault`.
    pub fn fail(&self, action: &str, fault: Fault, times: usize) {
        self.plan
            .lock()
            .unwrap()
            .faults
            .push((action.to_string(), fault, times));
    }

    pub fn clear_faults(&self) {
        self.plan.lock().unwrap().faults.clear();
    }

    /// The next `answers` that show an available DB proxy show it `creating`.
    pub fn hold_proxy_creating(&self, answers: usize) {
        self.plan.lock().unwrap().proxy_creating = answers;
    }

    /// The next `answers` that show an AVAILABLE target show `state` (with
    /// `reason`) instead.
    pub fn hold_target(&self, state: &'static str, reason: Option<&'static str>, answers: usize) {
        self.plan.lock().unwrap().target_held = Some((answers, state, reason));
    }

    pub fn release_holds(&self) {
        let mut p = self.plan.lock().unwrap();
        p.proxy_creating = 0;
        p.target_held = None;
    }

    pub fn calls(&self, action: &str) -> usize {
        self.plan
            .lock()
            .unwrap()
            .calls
            .get(action)
            .copied()
            .unwrap_or(0)
    }

    /// The REST calls so far (`SERVICE METHOD /path?query`), in order.
    pub fn rest_calls(&self) -> Vec<String> {
        self.plan.lock().unwrap().rest.clone()
    }

    pub fn all_calls(&self) -> BTreeMap<String, usize> {
        self.plan.lock().unwrap().calls.clone()
    }

    /// The most calls that were under way at once since the last call of
    /// this (which starts a new count).
    pub fn take_max_in_flight(&self) -> usize {
        let mut p = self.plan.lock().unwrap();
        let now = p.in_flight;
        std::mem::replace(&mut p.max_in_flight, now)
    }

    /// Throttles the calls of each action that starts with `prefix` beyond
    /// `per_second`, after a burst of `burst`, as AWS's API rate limits do
    /// (EC2's Describe calls: a bucket of 100, 20 a second, per action).
    pub fn rate_limit(&self, prefix: &str, per_second: f64, burst: f64) {
        self.plan
            .lock()
            .unwrap()
            .rates
            .push((prefix.to_string(), per_second, burst));
    }

    /// Answers throttled so far.
    pub fn throttled(&self) -> usize {
        self.plan.lock().unwrap().throttled
    }

    /// Calls of every action so far, in all.
    /// Records each call's arrival from now on (for a benchmark's trace).
    pub fn record_timeline(&self) {
        self.plan.lock().unwrap().timeline = Some(Vec::new());
    }

    /// The calls recorded since `record_timeline`, as lines of seconds
    /// since `since` and the action; recording stops.
    pub fn take_timeline(&self, since: std::time::Instant) -> String {
        let calls = self
            .plan
            .lock()
            .unwrap()
            .timeline
            .take()
            .unwrap_or_default();
        calls
            .iter()
            .map(|(at, action)| {
                format!("{:8.3} {action}\n", at.duration_since(since).as_secs_f64())
            })
            .collect()
    }

    pub fn total_calls(&self) -> usize {
        self.plan
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|(k, _)| !k.ends_with(" (all)") && !k.starts_with("throttled "))
            .map(|(_, n)| n)
            .sum()
    }
}

fn forward(upstream: &str, req: &Request) -> std::io::Result<Vec<u8>> {
    let mut up = TcpStream::connect(upstream)?;
    let mut head: Vec<&str> = req
        .head
        .trim_end()
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    head.push("Connection: close");
    up.write_all(format!("{}\r\n\r\n", head.join("\r\n")).as_bytes())?;
    up.write_all(&req.body)?;
    let mut response = Vec::new();
    up.read_to_end(&mut response)?;
    Ok(response)
}

struct Request {
    head: String,
    body: Vec<u8>,
}

fn read_request(conn: &mut TcpStream) -> std::io::Result<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = header(&head, "content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Request { head, body })
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The action: `Action=` of a query-protocol body, the operation of a JSON
/// protocol's `X-Amz-Target`, else `METHOD /path`.
fn action_of(req: &Request) -> String {
    let body = String::from_utf8_lossy(&req.body);
    let target = header(&req.head, "x-amz-target")
        .and_then(|t| t.rsplit('.').next())
        .map(str::to_string);
    body.split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .map(str::to_string)
        .or(target)
        .unwrap_or_else(|| {
            let line = req.head.lines().next().unwrap_or_default();
            let mut parts = line.split(' ');
            let method = parts.next().unwrap_or_default();
            let path = parts
                .next()
                .unwrap_or_default()
                .split('?')
                .next()
                .unwrap_or_default();
            // Lambda: the last path segment names the operation well enough.
            let tail = path.rsplit('/').next().unwrap_or_default();
            format!("{method} {tail}")
        })
}

/// A REST protocol's call (no `Action=`, no `X-Amz-Target`): its service,
/// from the SigV4 scope of its `Authorization`, then its method, path and
/// query.
fn rest_call(req: &Request) -> Option<String> {
    let body = String::from_utf8_lossy(&req.body);
    if header(&req.head, "x-amz-target").is_some() || body.contains("Action=") {
        return None;
    }
    let scope = header(&req.head, "authorization")?
        .split("Credential=")
        .nth(1)?;
    let service = scope.split('/').nth(3)?;
    let line = req.head.lines().next()?;
    let mut parts = line.split(' ');
    Some(format!("{service} {} {}", parts.next()?, parts.next()?))
}

fn fault_response(req: &Request, fault: Fault) -> Option<Vec<u8>> {
    let (status, extra, body) = match fault {
        Fault::Reset => return None,
        Fault::Unavailable => ("503 Service Unavailable", String::new(), String::new()),
        Fault::Throttle => {
            let text = String::from_utf8_lossy(&req.body);
            if text.contains("Version=2016-11-15") {
                // EC2's error format.
                (
                    "503 Service Unavailable",
                    String::new(),
                    "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>f</RequestID></Response>".to_string(),
                )
            } else if text.contains("Action=") {
                (
                    "400 Bad Request",
                    String::new(),
                    "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>f</RequestId></ErrorResponse>".to_string(),
                )
            } else {
                (
                    "429 Too Many Requests",
                    "x-amzn-ErrorType: TooManyRequestsException\r\n".to_string(),
                    "{\"message\":\"Rate exceeded\"}".to_string(),
                )
            }
        }
    };
    Some(
        format!(
            "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

fn serve(conn: TcpStream, upstream: &str, plan: &Arc<Mutex<Plan>>) -> std::io::Result<()> {
    {
        let mut p = plan.lock().unwrap();
        p.in_flight += 1;
        p.max_in_flight = p.max_in_flight.max(p.in_flight);
    }
    let result = answer(conn, upstream, plan);
    plan.lock().unwrap().in_flight -= 1;
    result
}

fn answer(mut conn: TcpStream, upstream: &str, plan: &Arc<Mutex<Plan>>) -> std::io::Result<()> {
    let req = read_request(&mut conn)?;
    let action = action_of(&req);
    let (latency, fault) = {
        let mut p = plan.lock().unwrap();
        *p.calls.entry(action.clone()).or_default() += 1;
        if let Some(call) = rest_call(&req) {
            p.rest.push(call);
        }
        if let Some(t) = p.timeline.as_mut() {
            t.push((std::time::Instant::now(), action.clone()));
        }
        // A listing of every proxy (a round of shared looks), counted apart
        // from the reads of one proxy by name.
        if action == "DescribeDBProxies"
            && !String::from_utf8_lossy(&req.body).contains("DBProxyName=")
        {
            *p.calls.entry("DescribeDBProxies (all)".into()).or_default() += 1;
        }
        let mut fault = None;
        if let Some(f) = p.faults.iter_mut().find(|(a, _, n)| *a == action && *n > 0) {
            f.2 -= 1;
            fault = Some(f.1);
        }
        let now = std::time::Instant::now();
        let rate = p
            .rates
            .iter()
            .find(|(prefix, _, _)| action.starts_with(prefix.as_str()))
            .map(|(_, rate, burst)| (*rate, *burst));
        if let Some((rate, burst)) = rate {
            let (tokens, last) = p.buckets.entry(action.clone()).or_insert((burst, now));
            *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(burst);
            *last = now;
            if *tokens >= 1.0 {
                *tokens -= 1.0;
            } else if fault.is_none() {
                fault = Some(Fault::Throttle);
            }
        }
        if fault == Some(Fault::Throttle) {
            p.throttled += 1;
            *p.calls.entry(format!("throttled {action}")).or_default() += 1;
        }
        (p.latency, fault)
    };
    std::thread::sleep(latency);
    if let Some(f) = fault {
        return match fault_response(&req, f) {
            Some(bytes) => conn.write_all(&bytes),
            None => conn.shutdown(std::net::Shutdown::Both),
        };
    }
    // Forward, one request per connection.
    let response = forward(upstream, &req)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |i| i + 4);
    let (resp_head, resp_body) = response.split_at(split);
    let mut body = String::from_utf8_lossy(resp_body).into_owned();
    let (creating, target) = {
        let mut p = plan.lock().unwrap();
        let creating = action == "DescribeDBProxies"
            && p.proxy_creating > 0
            && body.contains("<Status>available</Status>");
        if creating {
            p.proxy_creating -= 1;
        }
        let mut target = None;
        if action == "DescribeDBProxyTargets"
            && body.contains("<State>AVAILABLE</State>")
            && let Some((n, state, reason)) = p.target_held.as_mut()
            && *n > 0
        {
            *n -= 1;
            target = Some((*state, *reason));
        }
        (creating, target)
    };
    if creating {
        body = body.replace("<Status>available</Status>", "<Status>creating</Status>");
    }
    if let Some((state, reason)) = target {
        let health = match reason {
            Some(r) => format!(
                "<State>{state}</State><Reason>{r}</Reason><Description>held by the test's fault layer</Description>"
            ),
            None => format!("<State>{state}</State>"),
        };
        body = body.replace("<State>AVAILABLE</State>", &health);
    }
    let resp_head = String::from_utf8_lossy(resp_head);
    let mut lines: Vec<String> = resp_head
        .trim_end()
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            !l.starts_with("content-length:") && !l.starts_with("connection:")
        })
        .map(String::from)
        .collect();
    lines.push(format!("Content-Length: {}", body.len()));
    lines.push("Connection: close".into());
    conn.write_all(format!("{}\r\n\r\n", lines.join("\r\n")).as_bytes())?;
    conn.write_all(body.as_bytes())
}
