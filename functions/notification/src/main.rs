use std::sync::Arc;

use aws_lambda_events::event::kafka::KafkaEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use notification::{NotificationConfig, Notifier, send_deadline};
use shared::config::Secrets;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = NotificationConfig::from_env()?;
    let secrets = Arc::new(Secrets::new());
    let notifier = Notifier::from_config(&config, Arc::clone(&secrets)).await?;
    let (notifier, config, secrets) = (&notifier, &config, &secrets);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<KafkaEvent>| async move {
            let deadline = send_deadline(event.context.deadline());
            let result = notifier.handle_until(event.payload, deadline).await;
            let db_err = result.as_ref().err().and_then(|err| err.database_error());
            shared::db::recover_credentials(db_err, notifier.pool(), &config.database, secrets)
                .await;
            result
        },
    ))
    .await
}
