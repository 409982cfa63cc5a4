//! CPU time by program, read from `/proc`, to split what a benchmark's orders cost between
//! the database, the broker, the functions and the mail sink. Every process whose name
//! (`comm`) is one of the names counts, with the children it has reaped (PostgreSQL's
//! postmaster reaps its backends), so a run should have those programs to itself.

use std::time::Duration;

/// Linux reports these times in `USER_HZ` ticks, which is 100 per second on every
/// architecture (the kernel converts to it for user space).
const TICKS_PER_SECOND: u64 = 100;

/// CPU time (user and system) used so far by each named program, in the order named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuTimes(Vec<(String, Duration)>);

impl CpuTimes {
    /// Reads the times of every running process named one of `names`. Processes that end
    /// while it reads are skipped; no `/proc` (not Linux) reads as no time at all.
    pub fn read(names: &[&str]) -> Self {
        let mut times: Vec<(String, Duration)> = names
            .iter()
            .map(|name| ((*name).to_owned(), Duration::ZERO))
            .collect();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Self(times);
        };
        for entry in entries
            .flatten()
            .filter(|entry| is_process(&entry.file_name()))
        {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            if let Some((name, used)) = parse_stat(&stat)
                && let Some((_, total)) = times.iter_mut().find(|(named, _)| named == name)
            {
                *total += used;
            }
        }
        Self(times)
    }

    /// What each program used between `earlier` (a reading of the same names) and this one.
    pub fn since(&self, earlier: &Self) -> Self {
        Self(
            self.0
                .iter()
                .map(|(name, now)| {
                    let before = earlier
                        .0
                        .iter()
                        .find(|(named, _)| named == name)
                        .map_or(Duration::ZERO, |(_, before)| *before);
                    (name.clone(), now.saturating_sub(before))
                })
                .collect(),
        )
    }

    /// Each program's time divided by `count` (orders, records), in microseconds.
    pub fn micros_per(&self, count: usize) -> Vec<(&str, f64)> {
        self.0
            .iter()
            .map(|(name, used)| {
                (
                    name.as_str(),
                    used.as_secs_f64() * 1e6 / count.max(1) as f64,
                )
            })
            .collect()
    }

    pub fn total(&self) -> Duration {
        self.0.iter().map(|(_, used)| *used).sum()
    }
}

/// Whether a `/proc` entry is a process: its name is its pid. `/proc/self` and
/// `/proc/thread-self` also have a `stat`, the reading process's own, which counted it twice.
fn is_process(entry: &std::ffi::OsStr) -> bool {
    entry
        .to_str()
        .is_some_and(|name| !name.is_empty() && name.bytes().all(|byte| byte.is_ascii_digit()))
}

/// The name and the CPU time (own plus reaped children's, user plus system) in one
/// `/proc/<pid>/stat` line. The name is in parentheses and may itself hold spaces and
/// parentheses, so the fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(&str, Duration)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    // After the name: state (field 3), ..., utime (14), stime (15), cutime (16), cstime (17).
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let ticks = fields
        .get(11..15)?
        .iter()
        .map(|field| field.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    Some((name, Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn a_stat_line_gives_its_name_and_own_plus_reaped_time() {
        let line = "4242 (postgres) S 1 4242 4242 0 -1 4194560 900 0 0 0 150 25 300 40 20 0 1 0 \
                    100 200000000 3000 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(("postgres", Duration::from_millis(5_150)))
        );
    }

    #[test]
    fn only_pid_entries_of_proc_are_processes() {
        for pid in ["1", "4242"] {
            assert!(is_process(std::ffi::OsStr::new(pid)), "{pid}");
        }
        for other in ["self", "thread-self", "sys", "", "12a"] {
            assert!(!is_process(std::ffi::OsStr::new(other)), "{other}");
        }
    }

    #[test]
    fn a_name_with_spaces_and_parentheses_is_read_whole() {
        let line = "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 1 1 1";
        assert_eq!(
            parse_stat(line),
            Some(("a (b) c", Duration::from_millis(100)))
        );
    }

    #[test]
    fn a_short_or_garbled_line_is_skipped() {
        assert_eq!(parse_stat("7 (x) R 1 2"), None);
        assert_eq!(parse_stat("no parentheses here"), None);
        assert_eq!(parse_stat("7 (x) R 1 7 7 0 -1 0 0 0 0 0 a 2 3 4 20"), None);
    }

    #[test]
    fn this_process_is_counted_and_a_program_not_running_is_zero() {
        let name = std::fs::read_to_string("/proc/self/comm").unwrap();
        let names = [name.trim(), "no-such-program"];
        let before = CpuTimes::read(&names);
        let started = std::time::Instant::now();
        let mut spin = 0u64;
        let used = loop {
            for _ in 0..1_000_000 {
                spin = std::hint::black_box(spin.wrapping_add(1));
            }
            let used = CpuTimes::read(&names).since(&before);
            if used.total() >= Duration::from_millis(50) {
                break used;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "a minute of spinning was not counted: {used:?}"
            );
        };
        let per: BTreeMap<&str, f64> = used.micros_per(1).into_iter().collect();
        assert_eq!(per.len(), 2);
        assert_eq!(per["no-such-program"], 0.0);
        assert!(per[names[0]] >= 50_000.0, "{per:?}");
    }
}
