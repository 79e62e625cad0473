//! The `greendigit-cim` messenger against a CIM stand-in: a real HTTP server
//! on 127.0.0.1 with the token and submit endpoints, checking the bearer
//! token, expiring it, answering 401/500/400 on cue and storing what it
//! accepted. Records arrive once by ExecUnitID + window across a token
//! expiry, a 500, a 400 and a kill -9 between the POST and the bookkeeping.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::data::{HOUR, MIN, T0};
use super::delivery::{delivery_policy, expected, lastrun, run, site};
use super::formats::APEL_KEYS;
use super::http::{read_request, respond};
use super::support::ok;
use super::wattson::{command, write_policy};

const EMAIL: &str = "accounting@site.example.org";
/// Characters a query string must escape.
const PASSWORD: &str = "s3cret pass&word=1";

/// What the stand-in saw and does.
#[derive(Default)]
struct Cim {
    /// Tokens it gave out and still accepts.
    valid: HashSet<String>,
    tokens_given: usize,
    /// Whether a token stops working after one accepted submit.
    expire_after_submit: bool,
    /// Statuses to answer the next submits with, before accepting any.
    cue: VecDeque<u16>,
    /// Every submit request.
    submits: usize,
    /// Accepted records: (ExecUnitID, StartExecTime) → how many times.
    accepted: BTreeMap<(String, String), usize>,
    /// Accepted records as sent.
    records: Vec<serde_json::Value>,
}

fn decode(text: &str) -> String {
    let bytes = text.replace('+', " ").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Starts the stand-in; returns its base URL.
fn serve(cim: Arc<Mutex<Cim>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let request = read_request(&stream);
            let (path, query) = request
                .target
                .split_once('?')
                .unwrap_or((request.target.as_str(), ""));
            let mut cim = cim.lock().unwrap();
            match path {
                "/gd-cim-api/v1/token" => {
                    let params: BTreeMap<String, String> = query
                        .split('&')
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (decode(k), decode(v)))
                        .collect();
                    if params.get("email").map(String::as_str) != Some(EMAIL)
                        || params.get("password").map(String::as_str) != Some(PASSWORD)
                    {
                        respond(&mut stream, 401, r#"{"detail":"bad credentials"}"#);
                        continue;
                    }
                    cim.tokens_given += 1;
                    let token = format!("tok-{}", cim.tokens_given);
                    cim.valid.insert(token.clone());
                    respond(
                        &mut stream,
                        200,
                        &format!(
                            r#"{{"access_token":"{token}","token_type":"bearer","expires_in":3600}}"#
                        ),
                    );
                }
                "/gd-cim-api/v1/submit" => {
                    cim.submits += 1;
                    let token = request
                        .authorization
                        .as_deref()
                        .and_then(|a| a.strip_prefix("Authorization: Bearer "))
                        .or_else(|| {
                            request
                                .authorization
                                .as_deref()
                                .and_then(|a| a.strip_prefix("authorization: Bearer "))
                        })
                        .unwrap_or_default()
                        .to_owned();
                    if !cim.valid.contains(&token) {
                        respond(&mut stream, 401, r#"{"detail":"token expired"}"#);
                        continue;
                    }
                    match cim.cue.pop_front() {
                        Some(400) => {
                            respond(&mut stream, 400, r#"{"detail":"ExecUnitID vm-x rejected"}"#);
                            continue;
                        }
                        Some(status) => {
                            respond(&mut stream, status, r#"{"detail":"try later"}"#);
                            continue;
                        }
                        None => {}
                    }
                    let records: Vec<serde_json::Value> =
                        serde_json::from_slice(&request.body).expect("a JSON array");
                    for r in &records {
                        let key = (
                            r["ExecUnitID"].as_str().unwrap().to_owned(),
                            r["StartExecTime"].as_str().unwrap().to_owned(),
                        );
                        *cim.accepted.entry(key).or_default() += 1;
                    }
                    cim.records.extend(records);
                    if cim.expire_after_submit {
                        cim.valid.remove(&token);
                    }
                    respond(&mut stream, 200, r#"{"status":"ok"}"#);
                }
                _ => respond(&mut stream, 404, "{}"),
            }
        }
    });
    url
}

fn cim_policy(dir: &Path, prometheus: &str, cim: &str) -> std::path::PathBuf {
    let password = dir.join("cim-password");
    std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
    delivery_policy(
        dir,
        prometheus,
        &format!(
            r#"
[carbon]
pue = 1.4
intensity_g_per_kwh = 250

[[outputs]]
format = "apel-energy"
[outputs.params]
batch_size = 2
[outputs.messenger]
type = "greendigit-cim"
url = "{cim}"
allow_insecure = true
email = "{EMAIL}"
password_file = "{password}"
retries = 2
backoff_ms = 20
"#,
            password = password.display(),
        ),
    )
}

/// `2025-06-01T02:00:00Z` of a window start.
fn exec_time(ms: i64) -> String {
    wattson::window::format_ms(ms).replace(".000Z", "Z")
}

/// Checks a record has cASO's keys and types, and CIM's (the order is the
/// formats test's).
fn check_record(r: &serde_json::Value) {
    let keys: std::collections::BTreeSet<&str> =
        r.as_object().unwrap().keys().map(String::as_str).collect();
    let want = APEL_KEYS
        .into_iter()
        .chain(["CI_g", "CFP_g", "PUE"])
        .collect();
    assert_eq!(keys, want, "{r}");
    for key in [
        "WallClockTime_s",
        "CpuDuration_s",
        "SuspendDuration_s",
        "ExecUnitFinished",
    ] {
        assert!(r[key].is_i64(), "{key} is an integer: {r}");
    }
    for key in ["EnergyWh", "Work", "Efficiency", "CPUNormalizationFactor"] {
        assert!(r[key].is_f64(), "{key} is a float: {r}");
    }
    for key in ["StartExecTime", "EndExecTime"] {
        let t = r[key].as_str().unwrap();
        let parsed = wattson::window::parse_time(t).unwrap();
        assert_eq!(t, exec_time(parsed), "{key} as %Y-%m-%dT%H:%M:%SZ");
    }
    assert_eq!(r["CI_g"], 250.0);
    assert_eq!(r["PUE"], 1.4);
    let wh = r["EnergyWh"].as_f64().unwrap();
    let cfp = r["CFP_g"].as_f64().unwrap();
    let want = wh / 1000.0 * 1.4 * 250.0;
    assert!(
        (cfp - want).abs() <= 1e-12 * want.abs().max(1e-300),
        "{cfp} vs {want}"
    );
}

/// (vm, window start) → count, as the stand-in accepted them.
fn received(cim: &Cim) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = cim
        .accepted
        .keys()
        .map(|(vm, start)| (vm.clone(), wattson::window::parse_time(start).unwrap()))
        .collect();
    out.sort();
    out
}

#[test]
fn records_reach_cim_once_across_token_expiry_500_and_400() {
    let site = site();
    let dir = tempfile::tempdir().unwrap();
    let cim = Arc::new(Mutex::new(Cim {
        expire_after_submit: true,
        ..Cim::default()
    }));
    let url = serve(cim.clone());
    let policy = cim_policy(dir.path(), &site.prometheus.url, &url);

    // A token per submit: the second payload's token was expired by the
    // service after the first, so a 401 fetches a new one.
    let out = run(&policy, T0 + 3 * HOUR + 5 * MIN, None);
    ok(&out);
    {
        let cim = cim.lock().unwrap();
        assert_eq!(cim.accepted.len(), 4, "four VMs in [2h, 3h]");
        assert!(cim.tokens_given >= 2, "a new token after the 401");
        cim.records.iter().for_each(check_record);
    }

    // A 500 is retried; a 400 is not, and shows the service's answer.
    cim.lock().unwrap().cue.extend([500, 400]);
    let before = cim.lock().unwrap().submits;
    let out = run(&policy, T0 + 8 * HOUR + 30 * MIN, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("ExecUnitID vm-x rejected") && stderr.contains("not retried"),
        "{stderr}"
    );
    assert_eq!(
        cim.lock().unwrap().submits - before,
        2,
        "one 500, retried once into the 400, which is not retried"
    );
    // The next run delivers what waits, once.
    ok(&run(&policy, T0 + 8 * HOUR + 40 * MIN, None));
    let cim = cim.lock().unwrap();
    assert_eq!(received(&cim), expected(&site), "every record");
    assert!(
        cim.accepted.values().all(|&n| n == 1),
        "none twice: {:?}",
        cim.accepted
    );
    cim.records.iter().for_each(check_record);
    assert_eq!(lastrun(dir.path()), T0 + 8 * HOUR);
}

#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn a_kill_between_the_post_and_the_bookkeeping_sends_nothing_twice() {
    let site = site();
    let dir = tempfile::tempdir().unwrap();
    let cim = Arc::new(Mutex::new(Cim::default()));
    let url = serve(cim.clone());
    let policy = cim_policy(dir.path(), &site.prometheus.url, &url);
    ok(&run(&policy, T0 + 3 * HOUR + 5 * MIN, None));
    for crash in ["mid-delivery:1", "mid-delivery:3"] {
        let out = run(&policy, T0 + 8 * HOUR + 30 * MIN, Some(crash));
        assert!(!out.status.success(), "{crash}: the run must have crashed");
    }
    // Each crash left a payload the service had accepted in the spool: the
    // journal says so, and it is not posted again.
    ok(&run(&policy, T0 + 8 * HOUR + 30 * MIN, None));
    let cim = cim.lock().unwrap();
    assert_eq!(received(&cim), expected(&site));
    assert!(
        cim.accepted.values().all(|&n| n == 1),
        "none twice: {:?}",
        cim.accepted
    );
}

#[test]
fn the_password_stays_out_of_errors_and_bad_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    // Nobody listens there: the token request fails, and its URL (which
    // carries the password) must not be in the error.
    let port = super::prometheus::free_port();
    let site = site();
    let policy = cim_policy(
        dir.path(),
        &site.prometheus.url,
        &format!("http://127.0.0.1:{port}"),
    );
    let out = run(&policy, T0 + 3 * HOUR + 5 * MIN, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("token request"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "the password leaked: {stderr}");

    // Plain http without allow_insecure, no password source, another format.
    let text = std::fs::read_to_string(&policy)
        .unwrap()
        .replace("allow_insecure = true\n", "")
        .replace("format = \"apel-energy\"", "format = \"jsonl\"")
        .replace("[outputs.params]\nbatch_size = 2\n", "");
    let bad = write_policy(dir.path(), "bad.toml", &text);
    let out = command()
        .args(["policy", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("outputs[0].messenger") && stderr.contains("allow_insecure"),
        "{stderr}"
    );
    assert!(
        stderr.contains("outputs[0].format") && stderr.contains("apel-energy"),
        "{stderr}"
    );
}
