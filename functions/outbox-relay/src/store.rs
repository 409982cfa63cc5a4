//! The relay's SQL: claiming the stragglers of the outbox.

use std::time::Duration;

use shared::outbox::OutboxRow;
use sqlx::{PgConnection, PgPool};

/// Claims up to `limit` rows still unpublished after `min_age`, oldest first, with
/// `FOR UPDATE SKIP LOCKED`: concurrent relays never claim the same row, and a row that a
/// function is marking right now is left to it.
pub(crate) async fn claim_unpublished(
    conn: &mut PgConnection,
    min_age: Duration,
    limit: i64,
) -> sqlx::Result<Vec<OutboxRow>> {
    let min_age_ms = i64::try_from(min_age.as_millis()).unwrap_or(i64::MAX);
    sqlx::query_as!(
        OutboxRow,
        "SELECT id, topic, key, payload, traceparent FROM outbox
         WHERE created_at <= now() - make_interval(secs => $1::float8 / 1000)
         ORDER BY id
         LIMIT $2
         FOR UPDATE SKIP LOCKED",
        min_age_ms as f64,
        limit,
    )
    .fetch_all(conn)
    .await
}

/// How long the oldest row has waited: every row in the outbox is still to be published
/// (zero when there is none).
pub(crate) async fn oldest_unpublished_age(pool: &PgPool) -> sqlx::Result<Duration> {
    let seconds = sqlx::query_scalar!(
        r#"SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0) AS "seconds!"
           FROM outbox"#
    )
    .fetch_one(pool)
    .await?;
    Ok(Duration::from_secs_f64(seconds.max(0.0)))
}
