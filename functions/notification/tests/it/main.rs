//! Integration tests of the notification function against real PostgreSQL and real SMTP
//! servers: the shared maildev (read back through its REST API), private maildevs a test
//! stops, and small aiosmtpd servers (`tests/smtp_server.py`) that reject, defer, hold or
//! require AUTH. Each `#[sqlx::test]` gets a fresh, migrated database; recipient addresses
//! carry a UUID because the shared maildev keeps every test's mail.

mod credentials;
mod delivery;
mod exactly_once;
mod failures;
mod helpers;
mod personal_data;
mod samples;
mod smtp_server;
mod start_up;
mod tls;
