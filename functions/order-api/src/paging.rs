//! Paging at the HTTP edge: the `cursor` and `limit` query parameters of the newest-first
//! lists (orders, dead letters), parsed here, and the page a list answers.

use chrono::{DateTime, Utc};
use shared::domain::Invalid;
use uuid::Uuid;

/// A position in a newest-first list: the time (microseconds since 1970) and the id of the
/// last item of a page, as `<micros>_<id as 32 hex digits>`. Orders are keyed by UUID
/// ([`Cursor`]), dead letters by their serial id ([`DeadLetterCursor`]); both lists write
/// and read cursors alike. Clients treat a cursor as opaque; its shape is still exact
/// ([`CURSOR_PATTERN`]), so that the OpenAPI document can say which values are cursors and
/// every such value is a valid position in either list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCursor<Id> {
    pub(crate) at: DateTime<Utc>,
    pub(crate) id: Id,
}

/// A position in the order list.
pub type Cursor = PageCursor<Uuid>;
/// A position in the dead letter list.
pub type DeadLetterCursor = PageCursor<i64>;

/// Every string [`PageCursor::decode`] accepts, as a JSON Schema `pattern`. At most 16
/// digits keep the time between 1970 and 2286, inside what PostgreSQL can compare.
pub const CURSOR_PATTERN: &str = "^[0-9]{1,16}_[0-9a-f]{32}$";
const CURSOR_MAX_DIGITS: usize = 16;

/// An id a cursor can hold, written as 32 hex digits. Every 32-digit value must read as a
/// position, because the documented pattern admits all of them.
pub trait CursorId: Copy {
    fn to_bits(self) -> u128;
    fn from_bits(bits: u128) -> Self;
}

impl CursorId for Uuid {
    fn to_bits(self) -> u128 {
        self.as_u128()
    }

    fn from_bits(bits: u128) -> Self {
        Uuid::from_u128(bits)
    }
}

/// Dead letter ids are `bigserial`, so from 1 up. A value above `i64::MAX` lies after every
/// id of its time, as `i64::MAX` does.
impl CursorId for i64 {
    fn to_bits(self) -> u128 {
        u128::try_from(self).unwrap_or(0)
    }

    fn from_bits(bits: u128) -> Self {
        i64::try_from(bits).unwrap_or(i64::MAX)
    }
}

impl<Id: CursorId> PageCursor<Id> {
    /// Items are created after 1970 and long before 2286, so every encoded cursor decodes.
    pub fn encode(&self) -> String {
        format!("{}_{:032x}", self.at.timestamp_micros(), self.id.to_bits())
    }

    pub fn decode(raw: &str) -> Result<Self, Invalid> {
        let not_a_cursor = || Invalid("is not a cursor returned by this API".to_owned());
        let (micros, id) = raw.split_once('_').ok_or_else(not_a_cursor)?;
        let digits = (1..=CURSOR_MAX_DIGITS).contains(&micros.len())
            && micros.bytes().all(|b| b.is_ascii_digit());
        let hex = id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !(digits && hex) {
            return Err(not_a_cursor());
        }
        let micros: i64 = micros.parse().map_err(|_| not_a_cursor())?;
        let bits = u128::from_str_radix(id, 16).map_err(|_| not_a_cursor())?;
        Ok(Self {
            at: DateTime::from_timestamp_micros(micros).ok_or_else(not_a_cursor)?,
            id: Id::from_bits(bits),
        })
    }
}

/// How many items one page holds: 1 to 100, 20 by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(u8);

impl PageLimit {
    pub const MAX: i64 = 100;

    pub fn new(value: i64) -> Result<Self, Invalid> {
        if (1..=Self::MAX).contains(&value) {
            Ok(Self(value as u8))
        } else {
            Err(Invalid(format!(
                "must be between 1 and {}, got {value}",
                Self::MAX
            )))
        }
    }

    /// Reads a `limit` query parameter.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        raw.parse::<i64>()
            .map_err(|_| Invalid(format!("must be an integer, got {raw:?}")))
            .and_then(Self::new)
    }

    pub fn get(self) -> i64 {
        i64::from(self.0)
    }

    /// Rows to fetch for a page: one more than it holds tells whether another page follows.
    pub(crate) fn rows_to_fetch(self) -> i64 {
        self.get() + 1
    }
}

impl Default for PageLimit {
    fn default() -> Self {
        Self(20)
    }
}

/// One page of a newest-first list, and the cursor of the next page if there is one.
#[derive(Debug, Clone)]
pub struct Page<T, Id> {
    pub items: Vec<T>,
    pub next: Option<PageCursor<Id>>,
}

impl<T, Id> Page<T, Id> {
    /// From the rows fetched with [`PageLimit::rows_to_fetch`]; `position` is the cursor
    /// just after an item.
    pub(crate) fn from_rows(
        mut rows: Vec<T>,
        limit: PageLimit,
        position: impl Fn(&T) -> PageCursor<Id>,
    ) -> Self {
        let next = if rows.len() > usize::from(limit.0) {
            rows.truncate(limit.0.into());
            rows.last().map(position)
        } else {
            None
        };
        Self { items: rows, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let cursor = Cursor {
            at: DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap(),
            id: shared::domain::new_id(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        assert!(Cursor::decode("not a cursor").is_err());
        assert!(Cursor::decode("12_not-a-uuid").is_err());
        let letter = DeadLetterCursor {
            at: cursor.at,
            id: 42,
        };
        assert_eq!(
            letter.encode(),
            "1764000000123456_0000000000000000000000000000002a"
        );
        assert_eq!(DeadLetterCursor::decode(&letter.encode()).unwrap(), letter);
        // Both lists read every value of the documented pattern; past the last id there is
        // nothing, so a dead letter cursor beyond i64 is the position after the largest id.
        let beyond = format!("1764000000123456_{}", "f".repeat(32));
        assert_eq!(
            DeadLetterCursor::decode(&beyond).unwrap(),
            DeadLetterCursor {
                at: cursor.at,
                id: i64::MAX,
            }
        );
    }

    #[test]
    fn the_cursor_pattern_accepts_exactly_the_cursors_that_decode() {
        let pattern = regex::Regex::new(CURSOR_PATTERN).unwrap();
        let id = "019ab5c0000170008000000000000001";
        let encoded = Cursor {
            at: DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap(),
            id: id.parse().unwrap(),
        }
        .encode();
        for raw in [
            encoded.as_str(),
            &format!("0_{id}"),
            &format!("0000000000000000_{id}"),
            &format!("9999999999999999_{id}"),
            &format!("10000000000000000_{id}"),
            &format!("-1_{id}"),
            &format!("+1_{id}"),
            &format!("1_{}", id.to_uppercase()),
            &format!("1_{}", &id[1..]),
            &format!("1_{id}0"),
            &format!("1_{id}\n"),
            "1_019ab5c0-0001-7000-8000-000000000001",
            &format!("_{id}"),
            &format!("1{id}"),
            "",
            "garbage",
            // The earlier, base64 form.
            "MTc2NDAwMDAwMDEyMzQ1NnwwMTlhYjVjMC0wMDAxLTcwMDAtODAwMC0wMDAwMDAwMDAwMDE",
        ] {
            assert_eq!(
                pattern.is_match(raw),
                Cursor::decode(raw).is_ok(),
                "{raw:?}: pattern and order cursor decoder disagree"
            );
            assert_eq!(
                pattern.is_match(raw),
                DeadLetterCursor::decode(raw).is_ok(),
                "{raw:?}: pattern and dead letter cursor decoder disagree"
            );
        }
        assert!(pattern.is_match(&encoded));
    }

    #[test]
    fn page_limits_are_bounded() {
        assert!(PageLimit::new(0).is_err());
        assert_eq!(PageLimit::new(100).unwrap().get(), 100);
        assert!(PageLimit::new(101).is_err());
        assert_eq!(PageLimit::default().get(), 20);
    }
}
