//! db-migrate against real PostgreSQL (a fresh, empty database per test), a private tansu
//! broker, and a local HTTP server playing CloudFormation's pre-signed response URL.

mod helpers;
mod migrations;
mod resource;
mod roles;
