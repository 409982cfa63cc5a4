//! Where reading stands in each partition, so that every record the broker hands over is
//! checked against it before it is queued.
//!
//! Kafka assigns offsets one after another, and this system writes no transactions or
//! compacted topics, so a partition's records come without gaps. A gap means the broker
//! showed a record before an earlier one was readable: tansu moves a partition's high
//! watermark before it stores the batch, so while two producers write to one partition a
//! fetch can return the later batch without the earlier one. Reading on would skip the
//! earlier records for good, so the trigger drops the record after the gap and reads the
//! partition again from the missing offset. A gap that is still there after
//! [`GAP_PATIENCE`] is real (records removed by retention, say), and reading goes on past
//! it with a warning.
//!
//! Records from before the position (after the client falls back to an older offset) were
//! read already and are dropped, so they are not delivered twice.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::Partition;

/// How long a gap is read again before reading goes on past it. Generous: in a 10-minute
/// mixed-fault run the broker took longer than 2 s to make one batch readable, and skipping
/// it lost an order's record for good; a real gap (retention) only costs this wait once.
pub const GAP_PATIENCE: Duration = Duration::from_secs(30);

/// What to do with a record just read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The next record of its partition: queue it.
    Next,
    /// Read before: drop it.
    AlreadyRead,
    /// Records before it have not been read: drop it and read again from `from`.
    ReadAgain { from: i64 },
    /// A gap that outlasted [`GAP_PATIENCE`]: queue the record; `from..offset` is skipped.
    Skipped { from: i64 },
}

/// The next offset to read per partition, where known.
#[derive(Debug, Default)]
pub struct ReadPositions {
    next: BTreeMap<Partition, i64>,
    /// Since when each partition's current gap has been read again.
    gaps: BTreeMap<Partition, (i64, Instant)>,
}

impl ReadPositions {
    /// Reading starts at `offset` (the committed offset).
    pub fn start_at(&mut self, partition: Partition, offset: i64) {
        self.gaps.remove(&partition);
        self.next.insert(partition, offset);
    }

    /// The next offset to read, where known.
    pub fn next(&self, partition: &Partition) -> Option<i64> {
        self.next.get(partition).copied()
    }

    /// Checks a record read at `now` against the partition's position, and moves it on
    /// when the record is taken.
    pub fn admit(&mut self, partition: &Partition, offset: i64, now: Instant) -> Admission {
        let Some(next) = self.next(partition) else {
            self.next.insert(partition.clone(), offset + 1);
            return Admission::Next;
        };
        if offset < next {
            return Admission::AlreadyRead;
        }
        if offset > next {
            let (gap_at, since) = self.gaps.entry(partition.clone()).or_insert((next, now));
            if *gap_at != next {
                *gap_at = next;
                *since = now;
            }
            if now.duration_since(*since) < GAP_PATIENCE {
                return Admission::ReadAgain { from: next };
            }
        }
        self.gaps.remove(partition);
        self.next.insert(partition.clone(), offset + 1);
        if offset > next {
            Admission::Skipped { from: next }
        } else {
            Admission::Next
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p0() -> Partition {
        ("order-placed".to_owned(), 0)
    }

    #[test]
    fn records_in_offset_order_are_taken_and_those_read_before_are_dropped() {
        let mut positions = ReadPositions::default();
        let now = Instant::now();
        positions.start_at(p0(), 10);
        assert_eq!(positions.admit(&p0(), 10, now), Admission::Next);
        assert_eq!(positions.admit(&p0(), 11, now), Admission::Next);
        assert_eq!(positions.admit(&p0(), 10, now), Admission::AlreadyRead);
        assert_eq!(positions.next(&p0()), Some(12));
    }

    #[test]
    fn a_partition_with_no_known_position_starts_at_its_first_record() {
        let mut positions = ReadPositions::default();
        let now = Instant::now();
        assert_eq!(positions.admit(&p0(), 7, now), Admission::Next);
        assert_eq!(
            positions.admit(&p0(), 9, now),
            Admission::ReadAgain { from: 8 }
        );
    }

    #[test]
    fn a_gap_is_read_again_until_the_missing_record_comes() {
        let mut positions = ReadPositions::default();
        let now = Instant::now();
        positions.start_at(p0(), 5);
        assert_eq!(
            positions.admit(&p0(), 6, now),
            Admission::ReadAgain { from: 5 }
        );
        let later = now + Duration::from_millis(300);
        assert_eq!(
            positions.admit(&p0(), 6, later),
            Admission::ReadAgain { from: 5 }
        );
        assert_eq!(positions.admit(&p0(), 5, later), Admission::Next);
        assert_eq!(positions.admit(&p0(), 6, later), Admission::Next);
        assert_eq!(positions.next(&p0()), Some(7));
    }

    #[test]
    fn a_gap_that_outlasts_the_patience_is_skipped_and_a_new_gap_waits_afresh() {
        let mut positions = ReadPositions::default();
        let now = Instant::now();
        positions.start_at(p0(), 5);
        assert_eq!(
            positions.admit(&p0(), 8, now),
            Admission::ReadAgain { from: 5 }
        );
        let after = now + GAP_PATIENCE;
        assert_eq!(
            positions.admit(&p0(), 8, after),
            Admission::Skipped { from: 5 }
        );
        assert_eq!(positions.next(&p0()), Some(9));
        assert_eq!(
            positions.admit(&p0(), 11, after),
            Admission::ReadAgain { from: 9 }
        );
    }

    #[test]
    fn partitions_are_tracked_apart() {
        let mut positions = ReadPositions::default();
        let now = Instant::now();
        let p1 = ("order-placed".to_owned(), 1);
        positions.start_at(p0(), 3);
        positions.start_at(p1.clone(), 40);
        assert_eq!(positions.admit(&p1, 40, now), Admission::Next);
        assert_eq!(positions.admit(&p0(), 3, now), Admission::Next);
        assert_eq!(positions.next(&p0()), Some(4));
        assert_eq!(positions.next(&p1), Some(41));
    }
}
