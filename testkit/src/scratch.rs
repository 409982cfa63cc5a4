//! A throwaway database: created next to the configured one, migrated, dropped at the end.

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

/// A freshly migrated database that only this run uses.
pub struct ScratchDatabase {
    admin: PgConnectOptions,
    name: String,
    /// Its connection URL, for `DATABASE_URL` or pgbench.
    pub url: String,
    /// A small pool for setup and checks.
    pub pool: PgPool,
}

impl ScratchDatabase {
    /// Creates `<prefix>_<random>` on the server of `base_url` and applies every migration.
    pub async fn create(base_url: &str, prefix: &str) -> anyhow::Result<Self> {
        let admin: PgConnectOptions = base_url
            .parse()
            .with_context(|| "DATABASE_URL is not a PostgreSQL URL".to_owned())?;
        let name = format!("{prefix}_{}", uuid::Uuid::now_v7().simple());
        let mut conn = admin
            .connect()
            .await
            .context("could not connect to PostgreSQL")?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .context("could not create the scratch database")?;
        conn.close().await?;
        let mut url = url::Url::parse(base_url).context("DATABASE_URL is not a URL")?;
        url.set_path(&format!("/{name}"));
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(admin.clone().database(&name))
            .await
            .context("could not connect to the scratch database")?;
        shared::db::MIGRATOR
            .run(&pool)
            .await
            .context("could not migrate the scratch database")?;
        Ok(Self {
            admin,
            name,
            url: url.to_string(),
            pool,
        })
    }

    /// Connect options for this database.
    pub fn options(&self) -> PgConnectOptions {
        self.admin.clone().database(&self.name)
    }

    /// Closes every connection and drops the database.
    pub async fn drop_database(self) -> anyhow::Result<()> {
        self.pool.close().await;
        let mut conn: PgConnection = self.admin.connect().await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .await
        .context("could not drop the scratch database")?;
        Ok(())
    }
}
