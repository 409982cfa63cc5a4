use std::sync::Arc;

use aws_lambda_events::event::kafka::KafkaEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use notification::{Mailer, NotificationConfig, Notifier, send_deadline};
use shared::config::Secrets;
use shared::db::refresh_credentials_after;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = NotificationConfig::from_env()?;
    let secrets = Arc::new(Secrets::new());
    let pool = shared::db::pool(&config.database, &secrets, config.db_max_connections).await?;
    // One pooled SMTP transport per cold start (credentials fetched here, once).
    let mailer = Mailer::new(
        config.smtp.clone(),
        config.concurrency,
        Arc::clone(&secrets),
    )
    .await?;
    let notifier = Notifier::new(
        pool,
        Arc::new(mailer),
        config.mail.clone(),
        config.concurrency,
    );
    let (notifier, config, secrets) = (&notifier, &config, &secrets);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<KafkaEvent>| async move {
            let deadline = send_deadline(event.context.deadline());
            let result = notifier.handle_until(event.payload, Some(deadline)).await;
            if let Some(db_err) = result.as_ref().err().and_then(|err| err.database_error()) {
                // A rotated password: fetch it again so that Lambda's retry logs in.
                if let Err(err) =
                    refresh_credentials_after(db_err, notifier.pool(), &config.database, secrets)
                        .await
                {
                    tracing::warn!(error = %err, "could not refresh database credentials");
                }
            }
            result
        },
    ))
    .await
}
