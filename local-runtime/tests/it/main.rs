//! The local runtime, tested two ways: its MSK trigger emulator in-process ([`trigger`]), and
//! the whole system as a user runs it, as a child process against real services ([`system`]),
//! its metrics read back through a real Prometheus ([`observability`]), one order's trace
//! followed across it ([`trace`]), and the API gateway in front of the order API against the
//! Cognito emulator ([`gateway`]).

mod access;
mod cargo_lambda;
mod erasure;
mod gateway;
mod harness;
mod limit;
mod observability;
mod paying;
mod pinning;
mod system;
mod trace;
mod trigger;
