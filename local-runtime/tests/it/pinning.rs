//! Nothing the functions send may pin an RDS Proxy connection (docs/scale.md). The whole
//! system runs its real workload against a private PostgreSQL that logs every statement, and
//! every statement a function sent is checked against the proxy's pinning list.
//!
//! The list, as RDS Proxy's guide ("Avoiding pinning an RDS Proxy") gives it for PostgreSQL:
//!
//! > - Using `SET` commands.
//! > - Using `PREPARE`, `DISCARD`, `DEALLOCATE`, or `EXECUTE` commands to manage prepared
//! >   statements.
//! > - Creating temporary sequences, tables, or views.
//! > - Declaring cursors.
//! > - Discarding the session state.
//! > - Listening on a notification channel.
//! > - Loading a library module such as `auto_explain`.
//! > - Manipulating sequences using functions such as `nextval` and `setval`.
//! > - Interacting with locks using functions such as `pg_advisory_lock` and
//! >   `pg_try_advisory_lock`. (The transaction-level `pg_advisory_xact_lock` family does not
//! >   pin.)
//! > - Setting a parameter, or resetting a parameter to its default: `SET` and `set_config`.
//!
//! and, for every engine, any statement whose text is larger than 16 KB.
//!
//! `SET LOCAL` inside a transaction is allowed: it ends with the transaction, which is where
//! the proxy multiplexes anyway. Protocol-level prepared statements (sqlx's `Parse`/`Bind`)
//! are not SQL-level `PREPARE`/`EXECUTE`; docs/scale.md says why they stay.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use testkit::postgres::Cluster;

use crate::harness::{System, create_orders_database};

const WITHIN: Duration = Duration::from_secs(90);
/// The test's own connections carry this name, so that their statements are not checked.
const OBSERVER: &str = "pinning-observer";
/// Marks the start of each server log entry: `@@<application_name>|<pid>|`.
const LOG_LINE_PREFIX: &str = "@@%a|%p|";
/// RDS Proxy pins the session for a statement whose text is larger than this.
const MAX_STATEMENT_BYTES: usize = 16 * 1024;

/// Why the proxy would pin the session for `statement`, if it would. `in_transaction` says
/// whether the session had an open transaction when the statement ran.
fn pinning_reason(statement: &str, in_transaction: bool) -> Option<&'static str> {
    if statement.len() > MAX_STATEMENT_BYTES {
        return Some("statement text over 16 KB");
    }
    let text = normalised(statement);
    let starts = |word: &str| text == word || text.starts_with(&format!("{word} "));
    if starts("SET LOCAL") {
        return (!in_transaction).then_some("SET LOCAL outside a transaction");
    }
    let leading = [
        ("SET", "session-level SET"),
        ("RESET", "RESET of a parameter"),
        ("PREPARE", "SQL-level PREPARE"),
        ("EXECUTE", "SQL-level EXECUTE"),
        ("DEALLOCATE", "SQL-level DEALLOCATE"),
        ("DISCARD", "DISCARD of session state"),
        ("DECLARE", "cursor declaration"),
        ("LISTEN", "LISTEN on a notification channel"),
        ("LOAD", "loading a library module"),
    ];
    if let Some((_, reason)) = leading.iter().find(|(word, _)| starts(word)) {
        return Some(reason);
    }
    let anywhere = [
        ("CREATE TEMP", "temporary table, sequence or view"),
        ("CREATE GLOBAL TEMP", "temporary table, sequence or view"),
        ("CREATE LOCAL TEMP", "temporary table, sequence or view"),
        ("INTO TEMP", "temporary table"),
        ("NEXTVAL(", "sequence function"),
        ("SETVAL(", "sequence function"),
        ("CURRVAL(", "sequence function"),
        ("LASTVAL(", "sequence function"),
        ("PG_ADVISORY_LOCK", "session-level advisory lock"),
        ("PG_TRY_ADVISORY_LOCK", "session-level advisory lock"),
        ("PG_ADVISORY_UNLOCK", "session-level advisory lock"),
        ("SET_CONFIG(", "set_config"),
    ];
    anywhere
        .iter()
        .find(|(fragment, _)| text.contains(fragment))
        .map(|(_, reason)| *reason)
}

/// Upper case, comments dropped, white space collapsed, no space before `(`.
fn normalised(statement: &str) -> String {
    let without_comments: Vec<&str> = statement
        .lines()
        .map(|line| line.split("--").next().unwrap_or_default())
        .collect();
    without_comments
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" (", "(")
        .to_uppercase()
}

/// One statement the server ran, as `log_statement = all` reports it.
#[derive(Debug)]
struct Logged {
    application: String,
    pid: String,
    /// The whole text: a simple query may hold several statements.
    text: String,
}

/// The statements in a server log written with [`LOG_LINE_PREFIX`].
fn logged_statements(log: &str) -> Vec<Logged> {
    let mut entries: Vec<(String, String, String)> = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix("@@") {
            let mut parts = rest.splitn(3, '|');
            let (Some(application), Some(pid), Some(message)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            entries.push((application.to_owned(), pid.to_owned(), message.to_owned()));
        } else if let Some(last) = entries.last_mut() {
            last.2.push('\n');
            last.2.push_str(line);
        }
    }
    entries
        .into_iter()
        .filter_map(|(application, pid, message)| {
            let message = message.strip_prefix("LOG:  ")?;
            // Simple queries log as `statement: ...`, extended ones as `execute <name>: ...`.
            let text = match message.strip_prefix("statement: ") {
                Some(text) => text,
                None => message.strip_prefix("execute ")?.split_once(": ")?.1,
            };
            Some(Logged {
                application,
                pid,
                text: text.to_owned(),
            })
        })
        .collect()
}

/// Every statement of `statements` that would pin, with the reason.
fn pinning_statements(statements: &[Logged]) -> Vec<String> {
    let mut in_transaction: HashMap<&str, bool> = HashMap::new();
    let mut found = Vec::new();
    for logged in statements {
        // Only a simple query carries several statements, and ours hold no `;` in literals.
        for statement in logged.text.split(';').filter(|s| !s.trim().is_empty()) {
            let open = in_transaction.entry(logged.pid.as_str()).or_default();
            if let Some(reason) = pinning_reason(statement, *open) {
                found.push(format!("{reason}: {}", statement.trim()));
            }
            let text = normalised(statement);
            if text.starts_with("BEGIN") || text.starts_with("START TRANSACTION") {
                *open = true;
            } else if ["COMMIT", "ROLLBACK", "END", "ABORT"]
                .iter()
                .any(|word| text.starts_with(word))
            {
                *open = false;
            }
        }
    }
    found
}

#[test]
fn every_kind_of_statement_on_the_pinning_list_is_recognised() {
    let pinning = [
        "SET synchronous_commit = off",
        "set session statement_timeout = 0",
        "RESET ALL",
        "PREPARE p AS SELECT 1",
        "EXECUTE p",
        "DEALLOCATE ALL",
        "DISCARD ALL",
        "CREATE TEMP TABLE t (x int)",
        "create temporary sequence s",
        "CREATE GLOBAL TEMPORARY VIEW v AS SELECT 1",
        "SELECT * INTO TEMP t FROM orders",
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
        "LISTEN orders",
        "LOAD 'auto_explain'",
        "SELECT nextval ('outbox_id_seq')",
        "SELECT setval('outbox_id_seq', 1)",
        "SELECT pg_advisory_lock(1)",
        "SELECT pg_try_advisory_lock_shared(1)",
        "SELECT set_config('statement_timeout', '0', false)",
    ];
    for statement in pinning {
        assert!(
            pinning_reason(statement, true).is_some(),
            "not recognised as pinning: {statement}"
        );
    }
    let long = format!("SELECT '{}'", "x".repeat(MAX_STATEMENT_BYTES));
    assert_eq!(
        pinning_reason(&long, false),
        Some("statement text over 16 KB")
    );
    assert!(pinning_reason("SET LOCAL synchronous_commit = off", false).is_some());
}

#[test]
fn statements_that_do_not_pin_pass() {
    let fine = [
        "UPDATE stock SET quantity = quantity - 1 WHERE product_name = $1",
        "SELECT pg_advisory_xact_lock(1)",
        "-- SET in a comment\nSELECT 1",
        "INSERT INTO outbox (topic, key, payload) VALUES ($1, $2, $3)",
    ];
    for statement in fine {
        assert_eq!(pinning_reason(statement, false), None, "{statement}");
    }
    assert_eq!(
        pinning_reason("SET LOCAL synchronous_commit = off", true),
        None
    );
}

#[test]
fn a_log_is_read_into_statements_with_their_session_and_transaction() {
    let log = "@@|41|LOG:  statement: BEGIN; SET LOCAL synchronous_commit = off\n\
               @@|41|LOG:  execute sqlx_s_1: DELETE FROM outbox\n\t WHERE id = ANY($1)\n\
               @@|41|DETAIL:  Parameters: $1 = '{1}'\n\
               @@|41|LOG:  statement: COMMIT\n\
               @@|42|LOG:  statement: SET LOCAL synchronous_commit = off\n\
               @@pinning-observer|43|LOG:  execute <unnamed>: SELECT 1\n";
    let statements = logged_statements(log);
    assert_eq!(statements.len(), 5, "{statements:?}");
    assert_eq!(
        statements[1].text,
        "DELETE FROM outbox\n\t WHERE id = ANY($1)"
    );
    assert_eq!(statements[4].application, OBSERVER);
    let found = pinning_statements(&statements);
    assert_eq!(
        found,
        ["SET LOCAL outside a transaction: SET LOCAL synchronous_commit = off"]
    );
}

/// Statements that show each function's workload reached the database.
const EXPECTED_FRAGMENTS: [(&str, &str); 6] = [
    ("order-api placing an order", "INSERT INTO orders"),
    (
        "order-api deleting published events",
        "DELETE FROM outbox WHERE id = ANY",
    ),
    (
        "order-api replaying a dead letter",
        "UPDATE dead_letters SET replayed_at",
    ),
    ("inventory deciding", "UPDATE stock SET quantity"),
    ("notification recording a mail", "INSERT INTO notifications"),
    ("outbox-relay claiming stragglers", "FOR UPDATE SKIP LOCKED"),
];

#[tokio::test]
async fn no_function_sends_a_statement_that_pins_an_rds_proxy_connection() {
    let cluster = Cluster::start(&[
        ("log_statement", "all"),
        ("log_line_prefix", LOG_LINE_PREFIX),
    ])
    .await;
    let url = create_orders_database(&cluster).await;
    let observer: PgConnectOptions = url.parse::<PgConnectOptions>().unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_lazy_with(observer.application_name(OBSERVER));
    let system = System::start_on(pool, &url).await;
    // Migrations (db-migrate, which connects directly) ran before the API answered.
    let start = std::fs::read_to_string(cluster.log_path()).unwrap().len();

    system.set_stock("Pinning Laptop", 2).await;
    let mut ids = Vec::new();
    let mut emails = Vec::new();
    for quantity in [1, 1, 5] {
        let email = format!("pin-{}@example.com", uuid::Uuid::now_v7().simple());
        let (status, id) = system
            .place(json!({"customerName": "Pat", "customerEmail": email,
                          "productName": "Pinning Laptop", "quantity": quantity}))
            .await;
        assert_eq!(status, 201);
        ids.push(id.unwrap());
        emails.push(email);
    }
    let decided = system.wait_until_decided(&ids, WITHIN).await;
    let statuses: Vec<&str> = decided
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["CONFIRMED", "CONFIRMED", "REJECTED"],
        "{decided:?}"
    );
    // A received mail each, and a rejected mail for the rejected order.
    for (email, expected) in emails.iter().zip([1, 1, 2]) {
        let mails = system.mail.wait_for_messages(email, expected, WITHIN).await;
        assert_eq!(mails.len(), expected, "mails to {email}: {mails:?}");
    }
    let client = reqwest::Client::new();
    for path in [
        "/api/admin/orders?status=CONFIRMED&limit=1".to_owned(),
        "/api/stock".to_owned(),
        "/api/admin/dead-letters".to_owned(),
        format!("/api/admin/orders?customerEmail={}", emails[0]),
    ] {
        let response = client.get(system.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }

    // A straggler for the relay and a dead letter to replay, both copies of an event the
    // consumers already applied (they drop it by its id), read back from the broker: the
    // outbox forgot it once it was sent.
    let applied = testkit::kafka::read_records(
        &system.broker.bootstrap(),
        shared::events::topics::ORDER_PLACED,
        |_| true,
        1,
        WITHIN,
    )
    .await;
    let applied = applied
        .first()
        .expect("an order.placed record on the broker");
    let (key, payload) = (applied.key_str().unwrap_or_default(), applied.json());
    // The copies the test plants for the relay and the replay, each of the record's topic,
    // key and payload.
    let straggler = sqlx::query_scalar!(
        "INSERT INTO outbox (topic, key, payload, created_at)
         VALUES ($1, $2, $3, now() - interval '1 minute')
         RETURNING id",
        shared::events::topics::ORDER_PLACED,
        key,
        &payload,
    )
    .fetch_one(&system.pool)
    .await
    .unwrap();
    let dead_letter = sqlx::query_scalar!(
        r#"INSERT INTO dead_letters (consumer, topic, "partition", "offset", key, value, error)
           VALUES ('inventory', $1, 0, 1000000, convert_to($2, 'UTF8'),
                   convert_to($3::jsonb::text, 'UTF8'), 'copied by the pinning test')
           RETURNING id"#,
        shared::events::topics::ORDER_PLACED,
        key,
        &payload,
    )
    .fetch_one(&system.pool)
    .await
    .unwrap();
    let replay = client
        .post(system.url(&format!("/api/admin/dead-letters/{dead_letter}/replay")))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 200, "{}", replay.text().await.unwrap());
    testkit::eventually("the relay sends the straggler", WITHIN, || async {
        let published: bool = sqlx::query_scalar!(
            r#"SELECT NOT EXISTS (SELECT 1 FROM outbox WHERE id = $1) AS "published!""#,
            straggler
        )
        .fetch_one(&system.pool)
        .await
        .unwrap();
        if published {
            Ok(())
        } else {
            Err("still unpublished")
        }
    })
    .await;

    let log = std::fs::read_to_string(cluster.log_path()).unwrap();
    let statements: Vec<Logged> = logged_statements(&log[start..])
        .into_iter()
        .filter(|logged| logged.application != OBSERVER)
        .collect();
    for (what, fragment) in EXPECTED_FRAGMENTS {
        assert!(
            statements
                .iter()
                .any(|logged| normalised(&logged.text).contains(&normalised(fragment))),
            "no statement of {what} ({fragment}) in the log: {}",
            cluster.log_path().display()
        );
    }
    let pinning = pinning_statements(&statements);
    assert!(
        pinning.is_empty(),
        "statements that pin an RDS Proxy connection:\n{}",
        pinning.join("\n")
    );
}
