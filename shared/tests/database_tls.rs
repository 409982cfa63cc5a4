//! Verified TLS to the database (`verify-full`): a function connects only to a server whose
//! certificate a trusted CA issued for the host it dialled. Against private PostgreSQL servers
//! with certificates from a CA of their own, one for the right name and one for another.

use serde_json::json;
use shared::config::{DatabaseSettings, Secrets};
use shared::db::{Login, Role, connect_options};
use sqlx::{ConnectOptions, PgConnection};
use testkit::postgres::{Cluster, ClusterOptions, SUPERUSER_PASSWORD};

/// What a function in AWS is configured with, pointing at `cluster` as `localhost`.
async fn connect(
    cluster: &Cluster,
    root_cert: Option<std::path::PathBuf>,
) -> Result<PgConnection, sqlx::Error> {
    let client = testkit::secrets::emulator_client().await;
    let secret = testkit::secrets::create(
        &client,
        "rds-tls-",
        &json!({"username": "postgres", "password": SUPERUSER_PASSWORD}),
    )
    .await;
    let settings = DatabaseSettings::Rds {
        host: "localhost".to_owned(),
        port: cluster.port(),
        name: "postgres".to_owned(),
        secret_arn: secret,
        root_cert,
    };
    connect_options(
        &settings,
        &Secrets::from_client(client),
        Login::Role(Role::OrderApi),
    )
    .await
    .unwrap()
    .connect()
    .await
}

/// rustls's refusal of the server's certificate, as sqlx reports it.
fn refusal_names(err: &sqlx::Error, what: &str) -> bool {
    let text = err.to_string();
    text.contains("invalid peer certificate") && text.contains(what)
}

#[tokio::test]
async fn a_certificate_for_the_dialled_name_from_a_trusted_ca_is_accepted() {
    let cluster = Cluster::start_with(ClusterOptions::default()).await;
    let mut connection = connect(&cluster, Some(cluster.ca_path()))
        .await
        .expect("the server's certificate is valid for localhost");
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut connection)
            .await
            .unwrap();
    assert!(encrypted);
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let cluster = Cluster::start_with(ClusterOptions {
        server_name: "db.elsewhere.test",
        ..ClusterOptions::default()
    })
    .await;
    let err = connect(&cluster, Some(cluster.ca_path()))
        .await
        .expect_err("a certificate for db.elsewhere.test does not serve localhost");
    assert!(
        refusal_names(&err, "not valid for name \"localhost\""),
        "{err}"
    );
}

/// Without the server's CA the public roots the binary carries (Mozilla's, as RDS Proxy's
/// certificate needs) are all that is trusted.
#[tokio::test]
async fn a_certificate_from_a_ca_that_is_not_trusted_is_refused() {
    let cluster = Cluster::start_with(ClusterOptions::default()).await;
    let err = connect(&cluster, None)
        .await
        .expect_err("the private CA is not among the public roots");
    assert!(refusal_names(&err, "UnknownIssuer"), "{err}");
}
