//! The one wall clock, at the bottom of the house: time as the evidence
//! and the reports write it, nanoseconds since the Unix epoch and RFC 3339
//! text. Everything that stamps a packet, a record or a report reads it
//! here (pure decisions take their time as an argument instead).

/// Nanoseconds since the Unix epoch, now (0 if the clock is before it).
pub(crate) fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// RFC 3339 (UTC) for `ns` since the epoch, or the number itself when it
/// is out of the calendar's range.
pub(crate) fn timestamp(ns: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ns.to_string())
}
