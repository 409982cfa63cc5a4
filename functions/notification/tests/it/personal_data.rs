//! No recipient address and no customer name in what the function writes down about a
//! failed mail: its log lines, its error answer to Lambda, and `notifications.last_error`.
//! Addresses appear there masked (`shared::redact`), SMTP replies without the recipient.
//!
//! The function's real binary runs under the Runtime API stand-in, logging as deployed
//! (JSON, INFO, with this crate's and the shared crate's DEBUG lines on too), against a real
//! SMTP server that echoes the recipient in its 550 and 451 replies as servers commonly do.
//! (maildev accepts every recipient, so it cannot refuse one.) lettre's own DEBUG lines,
//! which repeat the whole SMTP conversation, are not on at INFO and are not looked at here.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use shared::redact::mask_email;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use testkit::lambda_api::{FunctionProcess, RuntimeApi};
use uuid::Uuid;

use crate::helpers::*;
use crate::smtp_server::SmtpServer;

const BINARY: &str = env!("CARGO_BIN_EXE_notification");

fn start_function(api: &RuntimeApi, options: &PgConnectOptions, smtp_port: u16) -> FunctionProcess {
    let env: Vec<(String, String)> = [
        ("DATABASE_URL", testkit::postgres::url_of(options)),
        ("SMTP_HOST", "127.0.0.1".to_owned()),
        ("SMTP_PORT", smtp_port.to_string()),
        ("SMTP_TLS", "none".to_owned()),
        ("SMTP_TIMEOUT_MS", "5000".to_owned()),
        ("MAIL_FROM", MAIL_FROM.to_owned()),
        // As template.yaml deploys it, plus the DEBUG lines of our own code.
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
        (
            "RUST_LOG",
            "info,notification=debug,shared=debug".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    FunctionProcess::start(BINARY.as_ref(), "notification", api, &env).expect("the binary starts")
}

/// The places `personal` (an address, its local part, a name) must not show up in.
fn assert_absent(personal: &[&str], place: &str, text: &str) {
    for value in personal {
        assert!(
            !text.contains(value),
            "{value:?} leaked into {place}:\n{text}"
        );
    }
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn failed_mails_leave_no_address_or_name_in_logs_errors_or_last_error(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    testkit::init_tracing();
    let pool: PgPool = pool_options.connect_with(options.clone()).await.unwrap();
    let tag = Uuid::now_v7().simple().to_string();
    let refused = unique_address("refused"); // 550 5.1.1 <address>: ...
    let deferred = unique_address("deferred"); // 451 4.3.0 <address>: ...
    // Not an address at all (a space in the domain): its record never gets past decoding.
    let unusable = format!("unusable-{tag}@exa mple.com");
    let placeholder = unique_address("placeholder");
    let good = unique_address("good");
    let server = SmtpServer::start(&["--reject", &refused, "--defer", &deferred]).await;
    let name = format!("Ada Secretname{tag}");
    let events = [
        placed(&name, Some(&refused)),
        placed(&name, Some(&deferred)),
        placed(&name, Some(&placeholder)),
        placed(&name, Some(&good)),
    ];
    let mut records: Vec<_> = events
        .iter()
        .zip(100..)
        .map(|(event, offset)| testkit::msk::record(event, 0, offset))
        .collect();
    let value = records[2].value.take().expect("a record value");
    let value = String::from_utf8(value)
        .unwrap()
        .replace(&placeholder, &unusable);
    records[2].value = Some(value.into_bytes());
    let payload = serde_json::to_value(testkit::msk::batch(records)).unwrap();

    let api = RuntimeApi::start(false).await;
    let function = start_function(&api, &options, server.settings().port);
    let answer = api
        .invoke(&payload, Duration::from_secs(60))
        .await
        .unwrap_or_else(|err| panic!("{err}; log: {}", function.log_path().display()));
    let log_path = function.log_path().to_owned();
    function.stop().await;
    let log = read_log(&log_path);

    // The deferred mail stays retryable, so the invocation fails; its answer names why.
    let error = answer.result.expect_err("a 451 leaves the batch retryable");
    let error = error.to_string();
    assert!(error.contains("451"), "{error}");

    let (refused_row, deferred_row, good_row) = (
        row(&pool, events[0].data.order_id, "ORDER_RECEIVED").await,
        row(&pool, events[1].data.order_id, "ORDER_RECEIVED").await,
        row(&pool, events[3].data.order_id, "ORDER_RECEIVED").await,
    );
    assert_eq!(
        [
            refused_row.status.as_str(),
            deferred_row.status.as_str(),
            good_row.status.as_str(),
        ],
        ["FAILED", "SENDING", "SENT"]
    );
    let refused_error = refused_row.last_error.unwrap();
    let deferred_error = deferred_row.last_error.unwrap();
    // The unusable address made its record poison: no mail row, a dead letter whose reason
    // names the field and not the address.
    let unusable_error: String = sqlx::query_scalar!(
        "SELECT error FROM dead_letters WHERE consumer = 'notification' AND \"offset\" = 102"
    )
    .fetch_one(&pool)
    .await
    .expect("the poison record is dead-lettered");
    assert!(
        unusable_error.contains("invalid event data: customerEmail: must be a valid email address"),
        "{unusable_error}"
    );
    let local_part = |address: &str| address.split('@').next().unwrap().to_owned();
    let personal: Vec<String> = [&refused, &deferred, &unusable, &good]
        .into_iter()
        .flat_map(|address| [address.clone(), local_part(address)])
        .chain([name.clone(), format!("Secretname{tag}")])
        .collect();
    let personal: Vec<&str> = personal.iter().map(String::as_str).collect();
    assert_absent(&personal, "the function's log", &log);
    assert_absent(&personal, "the invocation's error", &error);
    for (place, text) in [
        ("last_error of the refused mail", &refused_error),
        ("last_error of the deferred mail", &deferred_error),
        ("the dead letter's reason", &unusable_error),
    ] {
        assert_absent(&personal, place, text);
    }

    // The replies keep what they say, with the recipient masked.
    assert!(refused_error.starts_with("550 "), "{refused_error}");
    assert!(
        refused_error.contains("Recipient address rejected"),
        "{refused_error}"
    );
    assert!(
        refused_error.contains(&mask_email(&refused)),
        "{refused_error}"
    );
    assert!(deferred_error.starts_with("451 "), "{deferred_error}");
    assert!(
        deferred_error.contains(&mask_email(&deferred)),
        "{deferred_error}"
    );

    // What was logged about the failures is there, masked.
    assert!(
        log.contains("SMTP server refused the notification"),
        "the refusal was not logged:\n{log}"
    );
    assert!(log.contains(&mask_email(&refused)), "{log}");
    assert!(log.contains("batch failed"), "{log}");
}

/// The function's output, every line of which must be a JSON log record (so that nothing
/// is printed past the logger).
fn read_log(path: &Path) -> String {
    let log = std::fs::read_to_string(path).expect("the function's log is readable");
    assert!(!log.trim().is_empty(), "the function logged nothing");
    for line in log.lines().filter(|line| !line.trim().is_empty()) {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|err| panic!("not a JSON log line ({err}): {line}"));
    }
    log
}
