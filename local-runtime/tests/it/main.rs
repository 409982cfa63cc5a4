//! The local runtime, tested two ways: its MSK trigger emulator in-process ([`trigger`]), and
//! the whole system as a user runs it, as a child process against real services ([`system`]).

mod cargo_lambda;
mod harness;
mod system;
mod trigger;
