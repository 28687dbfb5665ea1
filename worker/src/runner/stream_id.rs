//! Stream entry ids (`<ms>-<seq>`) as orderable keys. Pure functions, used by the completer
//! to tell `complete.lua` the range of entries a batch acknowledges.

/// A stream id as (ms, seq), for ordering. A part that is not a number counts as 0.
pub(super) fn id_key(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// The lowest and highest of some stream ids, in stream order (`0-0` twice when there are
/// none).
pub(super) fn entry_range<'a>(ids: impl Iterator<Item = &'a str>) -> (&'a str, &'a str) {
    let mut lo: Option<&str> = None;
    let mut hi: Option<&str> = None;
    for id in ids {
        if lo.is_none_or(|l| id_key(id) < id_key(l)) {
            lo = Some(id);
        }
        if hi.is_none_or(|h| id_key(id) > id_key(h)) {
            hi = Some(id);
        }
    }
    (lo.unwrap_or("0-0"), hi.unwrap_or("0-0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_numerically_not_as_text() {
        assert_eq!(id_key("1790000000123-7"), (1_790_000_000_123, 7));
        assert_eq!(id_key("42"), (42, 0));
        assert_eq!(id_key("x-y"), (0, 0));
        // As text "9-0" > "10-0"; as ids it is lower.
        assert!(id_key("9-0") < id_key("10-0"));
        assert!(id_key("10-2") < id_key("10-10"));
    }

    #[test]
    fn range_spans_the_lowest_and_highest_id() {
        let ids = ["10-10", "9-5", "10-2", "100-0", "9-12"];
        assert_eq!(entry_range(ids.into_iter()), ("9-5", "100-0"));
        assert_eq!(entry_range(["5-1"].into_iter()), ("5-1", "5-1"));
        assert_eq!(entry_range(std::iter::empty()), ("0-0", "0-0"));
    }
}
