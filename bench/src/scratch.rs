//! The throwaway database every benchmark runs on is testkit's.

pub use testkit::scratch::ScratchDatabase;
