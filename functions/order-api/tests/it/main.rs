//! The order API against real PostgreSQL (a fresh database per test) and real Kafka brokers.

mod access;
mod bad_input;
mod cancelling;
mod configuration;
mod dead_letters;
mod documented_input;
mod erasure;
mod idempotency;
mod limits;
mod managed_instances;
mod openapi;
mod outages;
mod paying;
mod placing;
mod reading;
mod stock;
mod support;
