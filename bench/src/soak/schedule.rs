//! The fault schedule: drawn up front from the seed, so that a run can be repeated and its
//! schedule printed before it starts.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A kind of fault the soak injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// Every client connection to the broker cut, and new ones refused, for a while.
    BrokerCut,
    /// Every database session of the system terminated at once.
    DatabaseConnectionsKilled,
    /// The SMTP sink stopped for a while.
    SmtpStopped,
    /// The runtime killed with SIGKILL (nothing flushed or committed) and started again.
    RuntimeKilled,
    /// The payment stand-in (localstripe) frozen for a while: connections are accepted but
    /// nothing is answered, so calls time out, and what they sent is done once it runs again.
    PaymentStopped,
}

impl FaultKind {
    pub const ALL: [Self; 5] = [
        Self::BrokerCut,
        Self::DatabaseConnectionsKilled,
        Self::SmtpStopped,
        Self::RuntimeKilled,
        Self::PaymentStopped,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::BrokerCut => "broker network cut",
            Self::DatabaseConnectionsKilled => "database connections killed",
            Self::SmtpStopped => "SMTP sink stopped",
            Self::RuntimeKilled => "runtime SIGKILLed and restarted",
            Self::PaymentStopped => "payment stand-in stopped",
        }
    }
}

/// One fault: its kind, when it starts (from the soak's start) and how long it lasts.
#[derive(Debug, Clone, Copy)]
pub struct Fault {
    pub kind: FaultKind,
    pub at: Duration,
    pub lasts: Duration,
}

/// Faults over `duration`: starts at exponentially distributed gaps of mean `mean_gap`, each
/// lasting 2 to 12 s, never two at once (the next starts after the previous one ended).
pub fn draw(seed: u64, duration: Duration, mean_gap: Duration) -> Vec<Fault> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut faults = Vec::new();
    let mut at = Duration::ZERO;
    loop {
        let gap = -mean_gap.as_secs_f64() * (1.0 - rng.r#gen::<f64>()).ln();
        at += Duration::from_secs_f64(gap.max(1.0));
        if at >= duration {
            return faults;
        }
        let kind = FaultKind::ALL[rng.gen_range(0..FaultKind::ALL.len())];
        let lasts = Duration::from_secs(rng.gen_range(2..=12));
        faults.push(Fault { kind, at, lasts });
        at += lasts;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_schedule_and_faults_never_overlap() {
        let ten_minutes = Duration::from_secs(600);
        let first = draw(7, ten_minutes, Duration::from_secs(15));
        let again = draw(7, ten_minutes, Duration::from_secs(15));
        assert_eq!(
            first.iter().map(|f| (f.kind, f.at)).collect::<Vec<_>>(),
            again.iter().map(|f| (f.kind, f.at)).collect::<Vec<_>>()
        );
        assert!(first.len() >= 20, "{} faults", first.len());
        for pair in first.windows(2) {
            assert!(pair[0].at + pair[0].lasts <= pair[1].at);
        }
        assert!(first.iter().all(|f| f.at < ten_minutes));
    }

    #[test]
    fn a_ten_minute_schedule_draws_every_kind_of_fault_including_payment_stops() {
        for seed in 1..=5 {
            let faults = draw(seed, Duration::from_secs(600), Duration::from_secs(12));
            for kind in FaultKind::ALL {
                assert!(
                    faults.iter().any(|f| f.kind == kind),
                    "seed {seed} draws no {}",
                    kind.name()
                );
            }
        }
    }
}
