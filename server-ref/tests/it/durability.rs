//! A `202` leaves only once its batch is on disk (DESIGN §3): the real server runs under
//! `strace -f`, clients send batches with distinct id prefixes over several connections, and
//! the trace must show, for every `202` written to a socket, an `fdatasync`/`fsync` of the
//! write-ahead log that began after the WAL commit frame of that response's batch was written
//! and ended before the response. (A `kill -9` test cannot see this: the page cache survives
//! the process.)
//!
//! How the trace is read: with `-xx -yy` every buffer and file name is hex, and each socket
//! names its TCP 4-tuple. A request read on a connection holding `dur-b<N>-` ids makes batch N
//! that connection's current batch. SQLite writes each WAL frame as a 24-byte header and then
//! the page; a header whose bytes 4..8 are non-zero marks the commit frame that ends a
//! transaction. A batch's transaction is the first one whose pages hold its ids.
//!
//! Needs `strace` (the test scripts install it). Without it the test fails with the reason
//! rather than passing without having looked.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::{
    collections::HashMap,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use common::*;
use serde_json::{Value, json};

const CONNECTIONS: usize = 4;
const BATCHES_PER_CONNECTION: usize = 6;
const EVENTS_PER_BATCH: usize = 40;

/// One traced syscall that matters here, at its position in the trace.
#[derive(Debug)]
enum Seen {
    /// A write of `bytes` to the WAL file (`offset` into it).
    WalWrite { offset: u64, bytes: Vec<u8> },
    /// A sync of the WAL began.
    SyncStart { pid: u32 },
    /// That pid's sync of the WAL ended successfully.
    SyncEnd { pid: u32 },
    /// Bytes read from the TCP connection `conn`.
    SocketRead { conn: String, bytes: Vec<u8> },
    /// Bytes written to the TCP connection `conn`.
    SocketWrite { conn: String, bytes: Vec<u8> },
}

/// Decodes strace's `-xx` strings (`"\x48\x54"`) and `<…>` annotations in `text`, in order.
fn hex_strings(text: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("\\x") {
        let mut bytes = Vec::new();
        let mut s = &rest[start..];
        while let Some(hex) = s.strip_prefix("\\x") {
            bytes.push(u8::from_str_radix(&hex[..2], 16).unwrap());
            s = &hex[2..];
        }
        out.push(bytes);
        rest = s;
    }
    out
}

/// Splits a call's arguments `(3<…>, …` into the first argument's file annotation (a path,
/// hex under `-xx`, or a socket's `TCP:[a:p->b:q]`) and the text after it.
fn split_fd(args: &str) -> Option<(String, &str)> {
    let open = args.find('<')?;
    let inner_start = open + 1;
    if args[inner_start..].starts_with("TCP:[") {
        let close = args[inner_start..].find("]>")? + inner_start;
        return Some((args[inner_start..=close].to_owned(), &args[close + 2..]));
    }
    // A path; a device adds a nested `<char 1:3>`.
    let mut depth = 0;
    for (i, c) in args[open..].char_indices() {
        match c {
            '<' => depth += 1,
            '>' => {
                depth -= 1;
                if depth == 0 {
                    let inner = &args[inner_start..open + i];
                    let path = hex_strings(inner.split('<').next().unwrap_or_default()).concat();
                    return Some((String::from_utf8_lossy(&path).into_owned(), &args[open + i + 1..]));
                }
            }
            _ => {}
        }
    }
    None
}

/// The return value: strace pads `) = N` with spaces to align it.
fn return_value(line: &str) -> Option<i64> {
    line.rsplit_once(" = ")?.1.split_whitespace().next()?.parse().ok()
}

/// Reads the trace into the calls that matter, in trace order.
fn parse_trace(text: &str, wal: &str) -> Vec<Seen> {
    // Entry of each pid's unfinished call: (name, fd annotation).
    let mut pending: HashMap<u32, (String, Option<String>)> = HashMap::new();
    let mut seen = Vec::new();
    for line in text.lines() {
        let Some((pid, rest)) = line.trim_start().split_once(' ') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        let rest = rest.trim_start();
        // (call name, fd annotation, whether this line is the entry, whether it is the exit,
        // the arguments after the file annotation)
        let (name, fd, entry, exit, args) = if let Some(resumed) = rest.strip_prefix("<... ") {
            let name = resumed.split_whitespace().next().unwrap_or_default().to_owned();
            let Some((_, fd)) = pending.remove(&pid) else { continue };
            let args = resumed.split_once("resumed>").map_or("", |(_, a)| a);
            (name, fd, false, true, args)
        } else if let Some(open) = rest.find('(') {
            let name = rest[..open].to_owned();
            let split = split_fd(&rest[open..]);
            let unfinished = rest.ends_with("<unfinished ...>");
            let fd = split.as_ref().map(|(fd, _)| fd.clone());
            if unfinished {
                pending.insert(pid, (name.clone(), fd.clone()));
            }
            (name, fd, true, !unfinished, split.map_or("", |(_, a)| a))
        } else {
            continue;
        };
        let Some(fd) = fd else { continue };
        let on_wal = fd.ends_with(wal);
        let on_tcp = fd.starts_with("TCP:");
        let ok = !exit || return_value(line).is_some_and(|r| r >= 0);
        match name.as_str() {
            "fdatasync" | "fsync" if on_wal => {
                if entry {
                    seen.push(Seen::SyncStart { pid });
                }
                if exit && return_value(line) == Some(0) {
                    seen.push(Seen::SyncEnd { pid });
                }
            }
            "pwrite64" | "write" if on_wal && entry => {
                let bytes = hex_strings(args).into_iter().next().unwrap_or_default();
                let offset = args
                    .rsplit(", ")
                    .next()
                    .and_then(|o| o.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok());
                seen.push(Seen::WalWrite {
                    offset: offset.unwrap_or(0),
                    bytes,
                });
            }
            "read" | "recvfrom" | "recvmsg" | "readv" if on_tcp && exit && ok => {
                let bytes = hex_strings(args).concat();
                seen.push(Seen::SocketRead { conn: fd, bytes });
            }
            "write" | "writev" | "sendto" | "sendmsg" if on_tcp && entry => {
                let bytes = hex_strings(args).concat();
                seen.push(Seen::SocketWrite { conn: fd, bytes });
            }
            _ => {}
        }
    }
    seen
}

fn batch_marker(bytes: &[u8]) -> Option<usize> {
    let text = String::from_utf8_lossy(bytes);
    let at = text.find("\"dur-b")?;
    text[at + 6..].split('-').next()?.parse().ok()
}

fn holds(bytes: &[u8], batch: usize) -> bool {
    let marker = format!("dur-b{batch}-");
    bytes.windows(marker.len()).any(|w| w == marker.as_bytes())
}

/// Checks every `202` of the trace; returns how many were checked.
fn check_trace(seen: &[Seen], batches: usize) -> usize {
    // Position of the commit frame that ends each batch's transaction.
    let mut committed_at: HashMap<usize, usize> = HashMap::new();
    let mut txn_batches: Vec<usize> = Vec::new();
    let mut last_header_commits = false;
    for (pos, s) in seen.iter().enumerate() {
        let Seen::WalWrite { offset, bytes } = s else { continue };
        if *offset >= 32 && bytes.len() == 24 {
            last_header_commits = bytes[4..8] != [0, 0, 0, 0];
            continue;
        }
        if bytes.len() > 24 {
            for b in 0..batches {
                if holds(bytes, b) && !committed_at.contains_key(&b) && !txn_batches.contains(&b) {
                    txn_batches.push(b);
                }
            }
            if last_header_commits {
                for b in txn_batches.drain(..) {
                    committed_at.insert(b, pos);
                }
            }
        }
    }
    let mut current: HashMap<&str, usize> = HashMap::new();
    let mut checked = 0;
    for (pos, s) in seen.iter().enumerate() {
        match s {
            Seen::SocketRead { conn, bytes } => {
                if let Some(b) = batch_marker(bytes) {
                    current.insert(conn, b);
                }
            }
            Seen::SocketWrite { conn, bytes } if bytes.starts_with(b"HTTP/1.1 202") => {
                let batch = *current
                    .get(conn.as_str())
                    .unwrap_or_else(|| panic!("a 202 on {conn} without a batch read on it"));
                let commit = *committed_at
                    .get(&batch)
                    .unwrap_or_else(|| panic!("batch {batch} answered 202 but never committed to the WAL"));
                assert!(commit < pos, "batch {batch}: 202 before its WAL commit frame");
                // A sync that began after the commit frame and ended before the 202.
                let mut started: HashMap<u32, usize> = HashMap::new();
                let synced = seen[commit + 1..pos].iter().any(|s| match s {
                    Seen::SyncStart { pid } => {
                        started.insert(*pid, 0);
                        false
                    }
                    Seen::SyncEnd { pid } => started.contains_key(pid),
                    _ => false,
                });
                assert!(
                    synced,
                    "batch {batch}: its 202 (trace call {pos}) left before any WAL sync that began after its \
                     commit frame (call {commit}) had ended"
                );
                checked += 1;
            }
            _ => {}
        }
    }
    checked
}

fn strace_works() -> Result<(), String> {
    let out = Command::new("strace")
        .args(["-f", "-o", "/dev/null", "true"])
        .output()
        .map_err(|e| format!("strace is not installed ({e}): apt-get install -y strace"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "strace cannot trace here: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Starts the server under strace; returns the child, its URL and secret key.
fn start_traced(dir: &Path, trace: &Path) -> (std::process::Child, String, String) {
    let mut child = Command::new("strace")
        .args(["-f", "-xx", "-yy", "-s", "70000", "-o"])
        .arg(trace)
        .args([
            "-e",
            "trace=fdatasync,fsync,pwrite64,write,writev,sendto,sendmsg,read,recvfrom,recvmsg,readv",
            BIN,
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            &db_url(dir),
        ])
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let Banner { url, secret, .. } =
        read_banner(&mut child, Duration::from_secs(120)).expect("the traced server printed no listening line");
    (child, url, secret.expect("a first start prints the project's keys"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_202_leaves_after_a_sync_of_the_wal_that_holds_its_batch() {
    if let Err(why) = strace_works() {
        panic!("cannot check durability: {why}");
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("strace.txt");
    let (mut child, url, secret) = start_traced(dir.path(), &trace);
    let senders: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let (url, secret) = (url.clone(), secret.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for k in 0..BATCHES_PER_CONNECTION {
                    let batch = c * BATCHES_PER_CONNECTION + k;
                    let events: Vec<Value> = (0..EVENTS_PER_BATCH)
                        .map(|i| {
                            let mut e = ev(&format!("dur-b{batch}-{i}"));
                            e["data"] = json!({"tokens": i});
                            e
                        })
                        .collect();
                    let resp = http
                        .post(format!("{url}/v1/events"))
                        .bearer_auth(&secret)
                        .header("content-type", BATCH)
                        .body(serde_json::to_vec(&events).unwrap())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(resp.status(), 202);
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&trace).unwrap();
    let seen = parse_trace(&text, "/m.db-wal");
    let batches = CONNECTIONS * BATCHES_PER_CONNECTION;
    let checked = check_trace(&seen, batches);
    assert_eq!(checked, batches, "every batch's 202 was found in the trace");
    let syncs = seen.iter().filter(|s| matches!(s, Seen::SyncEnd { .. })).count();
    eprintln!("checked {checked} responses against {syncs} WAL syncs");
}
