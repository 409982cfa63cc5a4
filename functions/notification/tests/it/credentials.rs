//! The credentials path: `SMTP_SECRET_ARN` names a secret in the local Secrets Manager
//! emulator, and the transport logs in to an SMTP server that requires AUTH.

use notification::{NotificationError, SmtpAuth};
use shared::config::Secrets;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::*;
use crate::smtp_server::{SmtpServer, recipients};

/// Stores a fresh SMTP secret (`username`, `password`) and returns its ARN.
async fn smtp_secret(
    client: &aws_sdk_secretsmanager::Client,
    user: &str,
    password: &str,
) -> String {
    testkit::secrets::create(
        client,
        "notification-test/smtp-",
        &serde_json::json!({"username": user, "password": password}),
    )
    .await
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn credentials_from_the_secret_authenticate_against_a_server_that_requires_auth(
    pool: PgPool,
) {
    let password = format!("pw-{}", Uuid::now_v7());
    let server = SmtpServer::start(&["--auth", &format!("orders:{password}")]).await;
    let client = testkit::secrets::emulator_client().await;
    let arn = smtp_secret(&client, "orders", &password).await;
    let mut smtp = server.settings();
    smtp.auth = SmtpAuth::Secret { arn };
    let notifier = notifier_with(&pool, smtp, Secrets::from_client(client), None).await;
    let email = unique_address("auth");

    let summary = notifier
        .handle(batch(&[&placed("Ada", Some(&email))]))
        .await
        .unwrap();

    assert_eq!(summary.sent, 1, "{summary:?}");
    let accepted = server.wait_for_accepted(1).await;
    assert_eq!(recipients(&accepted), vec![email]);
    assert_eq!(
        accepted[0]["user"], "orders",
        "the mail came in over an authenticated session"
    );
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_wrong_password_is_refused_and_the_corrected_secret_is_fetched_again(pool: PgPool) {
    let password = format!("pw-{}", Uuid::now_v7());
    let server = SmtpServer::start(&["--auth", &format!("orders:{password}")]).await;
    let client = testkit::secrets::emulator_client().await;
    let arn = smtp_secret(&client, "orders", "not-the-password").await;
    let mut smtp = server.settings();
    smtp.auth = SmtpAuth::Secret { arn: arn.clone() };
    let notifier = notifier_with(&pool, smtp, Secrets::from_client(client.clone()), None).await;
    let event = placed("Ada", Some(&unique_address("wrong-password")));

    let err = notifier.handle(batch(&[&event])).await.unwrap_err();

    assert!(
        matches!(err.0, NotificationError::Delivery { .. }),
        "{err:?}"
    );
    assert!(
        err.is_transient(),
        "a login problem must not fail mails for good: {err:?}"
    );
    let refused = row(&pool, event.data.order_id, "ORDER_RECEIVED").await;
    assert_eq!(refused.status, "SENDING");
    let reason = refused.last_error.unwrap();
    assert!(
        reason.contains("authentication failed") && reason.contains("535"),
        "{reason}"
    );
    assert!(server.accepted().is_empty());

    // The secret is rotated to the right value; the retry fetches it again and logs in.
    testkit::secrets::rotate(
        &client,
        &arn,
        &serde_json::json!({"username": "orders", "password": password}),
    )
    .await;
    let summary = notifier.handle(batch(&[&event])).await.unwrap();

    assert_eq!(summary.sent, 1, "{summary:?}");
    assert_eq!(server.wait_for_accepted(1).await.len(), 1);
    assert_eq!(
        row(&pool, event.data.order_id, "ORDER_RECEIVED")
            .await
            .status,
        "SENT"
    );
}
