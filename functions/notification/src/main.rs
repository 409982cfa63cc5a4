use notification::NotificationConfig;
use shared::config::Secrets;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::run("notification", async {
        let config = NotificationConfig::from_env()?;
        notification::consumer_from_config(&config, &Secrets::new()).await
    })
    .await
}
