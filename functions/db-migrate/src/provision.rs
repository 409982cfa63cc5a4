//! The deploy-time work: apply the embedded migrations and create the Kafka topics that are
//! missing. Both steps are idempotent, so CloudFormation may run them on every update.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use secrecy::ExposeSecret;
use shared::config::{Credentials, KafkaSettings, Secrets};
use shared::db::{Login, Role};
use shared::events::topics;
use shared::kafka::{KafkaContext, client_config, client_context};
use sqlx::PgPool;

use crate::budget::{self, Budget};
use crate::config::{MigrateConfig, TopicLayout};

/// How long one metadata or admin request to the broker may take.
const BROKER_TIMEOUT: Duration = Duration::from_secs(20);

/// What the work needs; built once per cold start by [`Deps::from_config`], or by a test.
#[derive(Clone)]
pub struct Deps {
    pub pool: PgPool,
    pub kafka: KafkaSettings,
    pub secrets: Arc<Secrets>,
    pub topics: TopicLayout,
    /// Checked after the migrations when set (on AWS).
    pub budget: Option<Budget>,
    /// The function roles whose passwords are set from their secrets (on AWS).
    pub role_secrets: Vec<(Role, String)>,
}

impl Deps {
    /// A lazy pool (one connection is plenty) and the Kafka settings. Reads the database
    /// secret when the settings name one.
    pub async fn from_config(config: MigrateConfig) -> anyhow::Result<Self> {
        let secrets = Arc::new(Secrets::new());
        let pool = shared::db::pool(&config.database, &secrets, Login::Owner, 1).await?;
        Ok(Self {
            pool,
            kafka: config.kafka,
            secrets,
            topics: config.topics,
            budget: config.budget,
            role_secrets: config.role_secrets,
        })
    }
}

/// What a successful run did, reported back to CloudFormation as the resource's `Data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// The version of the newest migration now applied.
    pub schema_version: i64,
    pub topics_created: Vec<String>,
    pub topics_existing: Vec<String>,
}

/// Applies every migration, sets the function roles' passwords, checks the connection budget
/// when there is one, then makes sure every topic of [`topics::ALL`] exists with its retention.
#[tracing::instrument(skip_all, err(Display))]
pub async fn provision(deps: &Deps) -> anyhow::Result<Provisioned> {
    migrate(&deps.pool).await?;
    set_role_passwords(&deps.pool, &deps.secrets, &deps.role_secrets).await?;
    if let Some(budget) = &deps.budget {
        budget::enforce(&deps.pool, budget).await?;
    }
    let schema_version = shared::db::MIGRATOR
        .iter()
        .map(|migration| migration.version)
        .max()
        .unwrap_or_default();
    let (topics_created, topics_existing) =
        ensure_topics(&deps.kafka, &deps.secrets, deps.topics, &topics::ALL).await?;
    Ok(Provisioned {
        schema_version,
        topics_created,
        topics_existing,
    })
}

/// Applies the migrations that are not applied yet (sqlx holds an advisory lock meanwhile).
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    accept_comment_edits(pool).await?;
    shared::db::MIGRATOR
        .run(pool)
        .await
        .context("applying the database migrations failed")?;
    tracing::info!("database migrations applied");
    Ok(())
}

/// Sets each function role's password to the one in its secret, the credentials RDS Proxy
/// holds for the role (docs/data.md). Only a SCRAM verifier computed here reaches the server,
/// so the password appears in no statement a server log could keep. Runs on every deploy, so
/// a secret changed by hand takes effect at the next one.
pub async fn set_role_passwords(
    pool: &PgPool,
    secrets: &Secrets,
    role_secrets: &[(Role, String)],
) -> anyhow::Result<()> {
    for (role, arn) in role_secrets {
        let credentials: Credentials = secrets
            .json(arn)
            .await
            .with_context(|| format!("could not read the secret of role {}", role.name()))?;
        anyhow::ensure!(
            credentials.username == role.name(),
            "the secret {arn} is for user {:?}, not for role {}",
            credentials.username,
            role.name()
        );
        let verifier = postgres_protocol::password::scram_sha_256(
            credentials.password.expose_secret().as_bytes(),
        );
        // ALTER ROLE takes no bind parameters; format() quotes the name and the verifier.
        let statement = sqlx::query_scalar!(
            r#"SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', $1::text, $2::text) AS "statement!""#,
            role.name(),
            verifier,
        )
        .fetch_one(pool)
        .await?;
        sqlx::raw_sql(&statement)
            .execute(pool)
            .await
            .with_context(|| format!("could not set the password of role {}", role.name()))?;
    }
    if !role_secrets.is_empty() {
        tracing::info!(roles = role_secrets.len(), "function role passwords set");
    }
    Ok(())
}

/// Migrations whose file changed after release in comments only: (version, SHA-384 of the
/// released file). sqlx refuses to run when an applied migration's checksum differs, so a
/// database that applied the released file gets the current checksum recorded instead.
pub const COMMENT_ONLY_EDITS: [(i64, &str); 1] = [(
    20_261_124_000_001,
    "cb526b5535532340b0fcf88b22af73392119d90514fc66c1e978141dee3249376afcdb880653e7dae6401c14c9f72b32",
)];

async fn accept_comment_edits(pool: &PgPool) -> anyhow::Result<()> {
    let applied_table_exists =
        sqlx::query_scalar!(r#"SELECT to_regclass('_sqlx_migrations') IS NOT NULL AS "exists!""#)
            .fetch_one(pool)
            .await
            .context("could not look for applied migrations")?;
    if !applied_table_exists {
        return Ok(());
    }
    for (version, released) in COMMENT_ONLY_EDITS {
        let Some(current) = shared::db::MIGRATOR
            .iter()
            .find(|migration| migration.version == version)
        else {
            continue;
        };
        let released = hex::decode(released).expect("a hex constant");
        // A runtime query: `_sqlx_migrations` is sqlx's own table, not part of the schema the
        // compile-time checks see.
        let fixed = sqlx::query(
            "UPDATE _sqlx_migrations SET checksum = $1 WHERE version = $2 AND checksum = $3",
        )
        .bind(current.checksum.as_ref())
        .bind(version)
        .bind(&released)
        .execute(pool)
        .await
        .context("could not record the checksum of a comment-only migration edit")?;
        if fixed.rows_affected() > 0 {
            tracing::info!(
                version,
                "recorded the checksum of a comment-only migration edit"
            );
        }
    }
    Ok(())
}

/// Creates those of `names` the broker does not have yet, each with `retention.ms` set from
/// the layout, and sets the same retention on those it has. Returns (created, already there).
pub async fn ensure_topics(
    kafka: &KafkaSettings,
    secrets: &Secrets,
    layout: TopicLayout,
    names: &[&str],
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let admin: Arc<AdminClient<KafkaContext>> = Arc::new(
        client_config(kafka, secrets)
            .await?
            .create_with_context(client_context(kafka).await?)
            .context("could not create the Kafka admin client")?,
    );
    let existing = broker_topics(&admin).await?;

    let (present, missing): (Vec<&str>, Vec<&str>) = names
        .iter()
        .partition(|name| existing.iter().any(|topic| topic == *name));
    let retention_ms = layout.retention.as_millis().to_string();
    let options = AdminOptions::new()
        .request_timeout(Some(BROKER_TIMEOUT))
        .operation_timeout(Some(BROKER_TIMEOUT));

    let mut already = present.iter().map(ToString::to_string).collect::<Vec<_>>();
    let (created, created_meanwhile) =
        create_topics(&admin, &layout, &missing, &retention_ms, &options).await?;
    already.extend(created_meanwhile);
    set_retention(&admin, &present, &retention_ms, &options).await?;
    tracing::info!(?created, existing = ?already, retention_ms, "kafka topics ensured");
    Ok((created, already))
}

/// The names of every topic the broker has.
async fn broker_topics(admin: &Arc<AdminClient<KafkaContext>>) -> anyhow::Result<Vec<String>> {
    let admin = admin.clone();
    tokio::task::spawn_blocking(move || {
        admin
            .inner()
            .fetch_metadata(None, BROKER_TIMEOUT)
            .map(|metadata| {
                metadata
                    .topics()
                    .iter()
                    .map(|topic| topic.name().to_owned())
                    .collect::<Vec<_>>()
            })
    })
    .await?
    .context("could not read the broker's topics")
}

/// Creates the `missing` topics as the layout says, with `retention.ms` set. Returns (created,
/// created meanwhile by someone else); fails on any other refusal.
async fn create_topics(
    admin: &AdminClient<KafkaContext>,
    layout: &TopicLayout,
    missing: &[&str],
    retention_ms: &str,
    options: &AdminOptions,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let new_topics: Vec<NewTopic> = missing
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                layout.partitions,
                TopicReplication::Fixed(layout.replication_factor),
            )
            .set("retention.ms", retention_ms)
        })
        .collect();
    let mut created = Vec::new();
    let mut already = Vec::new();
    if !new_topics.is_empty() {
        let results = admin
            .create_topics(&new_topics, options)
            .await
            .context("the broker refused the topic creation request")?;
        for result in results {
            match result {
                Ok(name) => created.push(name),
                // Created meanwhile by someone else: that is what we wanted.
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => already.push(name),
                Err((name, code)) => {
                    anyhow::bail!("could not create topic {name}: {code}");
                }
            }
        }
    }
    Ok((created, already))
}

/// Sets `retention.ms` on the `present` topics, where the broker can alter topic
/// configurations.
async fn set_retention(
    admin: &AdminClient<KafkaContext>,
    present: &[&str],
    retention_ms: &str,
    options: &AdminOptions,
) -> anyhow::Result<()> {
    if present.is_empty() {
        return Ok(());
    }
    let changes: Vec<AlterConfig> = present
        .iter()
        .map(|name| {
            AlterConfig::new(ResourceSpecifier::Topic(name)).set("retention.ms", retention_ms)
        })
        .collect();
    match admin.alter_configs(&changes, options).await {
        Ok(results) => {
            for result in results {
                if let Err((topic, code)) = result {
                    anyhow::bail!("could not set the retention of {topic:?}: {code}");
                }
            }
        }
        // MSK alters topic configurations; the local broker (tansu) answers AlterConfigs
        // as unsupported, and its topics keep the retention they were created with.
        Err(KafkaError::AdminOp(RDKafkaErrorCode::UnsupportedFeature)) => {
            tracing::warn!(
                retention_ms,
                "the broker cannot alter topic configurations; existing topics keep the retention they were created with"
            );
        }
        Err(err) => {
            return Err(err).context("the broker refused to set the topics' retention");
        }
    }
    Ok(())
}
