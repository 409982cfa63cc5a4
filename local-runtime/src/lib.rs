//! The local runtime: the whole order system in one process, with the production handlers.
//!
//! - [`trigger`]: emulates Lambda's MSK event source mapping for one function.
pub mod trigger;
