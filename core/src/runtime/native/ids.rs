//! Event ids of the native runtime: UUIDv7, kept apart across `fork()`.

/// A new UUIDv7 (hyphenated, lowercase).
///
/// The random part comes from a thread-local generator, whose state a forked child inherits:
/// two children of one parent (gunicorn workers, a `multiprocessing` pool) would draw the same
/// bits and — within one millisecond — mint the same id, which the server then drops as a
/// duplicate. Mixing the process id into the random bits keeps ids of forked processes apart.
/// The id is read once per thread and again after a fork (`forkguard`'s `pthread_atfork`
/// handler), not per event: `getpid` is a system call (0.2–0.5 µs on these VMs, where a
/// whole `track()` is ≈ 1 µs).
pub(crate) fn new_event_id(now: std::time::SystemTime) -> String {
    use std::cell::RefCell;
    thread_local! {
        static PID_MASK: RefCell<Option<(forkguard::Guard, u128)>> = const { RefCell::new(None) };
    }
    let pid_mask = || u128::from(std::process::id()).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
    let millis = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let pid_mask = PID_MASK.with_borrow_mut(|cached| match cached {
        Some((guard, mask)) => {
            if guard.detected_fork() {
                *mask = pid_mask();
            }
            *mask
        }
        None => {
            // The guard first, then the id: a fork between the two is seen on the next call.
            // Without a fork handler (`pthread_atfork` failed) nothing is cached: a getpid per id.
            let guard = forkguard::Guard::try_new().ok();
            let mask = pid_mask();
            *cached = guard.map(|guard| (guard, mask));
            mask
        }
    });
    let random = (fastrand::u128(..) ^ pid_mask).to_le_bytes();
    let mut bits = [0u8; 10];
    bits.copy_from_slice(&random[..10]);
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &bits).into_uuid();
    let mut buf = uuid::Uuid::encode_buffer();
    id.hyphenated().encode_lower(&mut buf).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_version_7_and_distinct() {
        let ids: std::collections::HashSet<String> = (0..10_000)
            .map(|_| new_event_id(std::time::SystemTime::now()))
            .collect();
        assert_eq!(ids.len(), 10_000);
        let id = uuid::Uuid::parse_str(ids.iter().next().expect("ids")).expect("a UUID");
        assert_eq!(id.get_version_num(), 7);
    }

    #[test]
    fn now_matches_chrono_formatting() {
        for _ in 0..3 {
            let ours = crate::track::format_rfc3339(std::time::SystemTime::now());
            let ours = ours.as_str();
            let parsed = chrono::DateTime::parse_from_rfc3339(ours).expect("valid RFC 3339");
            assert_eq!(ours, parsed.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            let age = chrono::Utc::now().signed_duration_since(parsed);
            assert!(age.num_milliseconds().abs() < 1000, "{ours}");
            std::thread::sleep(std::time::Duration::from_millis(600));
        }
    }
}
