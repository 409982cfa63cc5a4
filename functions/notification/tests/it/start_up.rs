//! The SMTP connection opened at start-up carries the first mail.

use std::sync::Arc;
use std::time::Duration;

use lettre::Message;
use notification::Mailer;
use shared::config::Secrets;

use crate::helpers::unique_address;
use crate::smtp_server::SmtpServer;

/// A cold start opens the transport's first connection in the background, and the first mail,
/// sent straight after (as a cold start's first invocation is), waits for that connection
/// instead of opening a second: the server has seen one EHLO when the mail arrives.
#[tokio::test]
async fn the_first_mail_goes_over_the_connection_opened_at_start_up() {
    testkit::init_tracing();
    let server = SmtpServer::start(&[]).await;
    let mailer = Arc::new(
        Mailer::new(server.settings(), 4, Secrets::new())
            .await
            .expect("the SMTP transport builds"),
    );
    mailer.open_early().await;
    let to = unique_address("start-up");
    let message = Message::builder()
        .from("Orders <orders@shop.example>".parse().unwrap())
        .to(to.parse().unwrap())
        .subject("first")
        .body("the first mail of a cold start".to_owned())
        .unwrap();
    mailer
        .send(&message, Duration::from_secs(5))
        .await
        .expect("the mail is sent");
    let accepted = server.wait_for_accepted(1).await;
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    assert_eq!(
        accepted[0]["connections"], 1,
        "the first mail used a second connection: {accepted:?}"
    );
}
