//! The deploy-time work: apply the embedded migrations and create the Kafka topics that are
//! missing. Both steps are idempotent, so CloudFormation may run them on every update.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::types::RDKafkaErrorCode;
use shared::config::{KafkaSettings, Secrets};
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
}

impl Deps {
    /// A lazy pool (one connection is plenty) and the Kafka settings. Reads the database
    /// secret when the settings name one.
    pub async fn from_config(config: MigrateConfig) -> anyhow::Result<Self> {
        let secrets = Arc::new(Secrets::new());
        let pool = shared::db::pool(&config.database, &secrets, 1).await?;
        Ok(Self {
            pool,
            kafka: config.kafka,
            secrets,
            topics: config.topics,
            budget: config.budget,
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

/// Applies every migration, checks the connection budget when there is one, then makes sure
/// every topic of [`topics::ALL`] exists.
#[tracing::instrument(skip_all, err(Display))]
pub async fn provision(deps: &Deps) -> anyhow::Result<Provisioned> {
    migrate(&deps.pool).await?;
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

/// Creates those of `names` the broker does not have yet. Returns (created, already there).
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

    let existing = {
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
        .context("could not read the broker's topics")?
    };

    let (present, missing): (Vec<&str>, Vec<&str>) = names
        .iter()
        .partition(|name| existing.iter().any(|topic| topic == *name));
    let new_topics: Vec<NewTopic> = missing
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                layout.partitions,
                TopicReplication::Fixed(layout.replication_factor),
            )
        })
        .collect();
    let options = AdminOptions::new()
        .request_timeout(Some(BROKER_TIMEOUT))
        .operation_timeout(Some(BROKER_TIMEOUT));

    let mut created = Vec::new();
    let mut already = present.iter().map(ToString::to_string).collect::<Vec<_>>();
    if !new_topics.is_empty() {
        let results = admin
            .create_topics(&new_topics, &options)
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
    tracing::info!(?created, existing = ?already, "kafka topics ensured");
    Ok((created, already))
}
