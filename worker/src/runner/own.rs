//! Entries of this executor's own stream (`stream:<executor>`, where broadcast runs meant
//! for it alone wait) next to entries of the group stream. Both streams mint ids the same
//! way, so the same id may exist in each: inside the worker an own-stream entry id carries
//! the [`MARK`] prefix, which keeps the in-flight table's keys apart and tells the completer,
//! the heartbeat and the claimer which stream (and so which script keys) an entry needs.
//! The mark never reaches Redis: [`id`] takes it off. Pure, no I/O.

/// Prefix of an own-stream entry id inside the worker (a stream id starts with a digit).
const MARK: &str = "own:";

/// The worker's name for entry `id` of its own stream.
pub(super) fn mark(id: &str) -> String {
    format!("{MARK}{id}")
}

/// Whether a worker entry name is of the own stream.
pub(super) fn is_own(entry: &str) -> bool {
    entry.starts_with(MARK)
}

/// The stream entry id of a worker entry name, as Redis knows it.
pub(super) fn id(entry: &str) -> &str {
    entry.strip_prefix(MARK).unwrap_or(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_entries_are_told_apart_and_read_back() {
        let e = mark("1790000000000-0");
        assert!(is_own(&e) && !is_own("1790000000000-0"));
        assert_ne!(e, "1790000000000-0");
        assert_eq!(id(&e), "1790000000000-0");
        assert_eq!(id("1790000000000-0"), "1790000000000-0");
    }
}
