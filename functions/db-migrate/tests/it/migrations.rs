//! Migrations that changed after release in comments only: a database that applied the
//! released file is brought up to date instead of refused.

use db_migrate::provision::{COMMENT_ONLY_EDITS, migrate};
use sqlx::PgPool;
use sqlx::migrate::MigrateError;

#[sqlx::test(migrations = false)]
async fn a_database_migrated_with_a_released_file_accepts_its_comment_only_edit(pool: PgPool) {
    testkit::MIGRATOR.run(&pool).await.unwrap();
    // What a database that applied the released files records.
    for (version, released) in COMMENT_ONLY_EDITS {
        sqlx::query("UPDATE _sqlx_migrations SET checksum = decode($1, 'hex') WHERE version = $2")
            .bind(released)
            .bind(version)
            .execute(&pool)
            .await
            .unwrap();
    }
    assert!(
        matches!(
            testkit::MIGRATOR.run(&pool).await,
            Err(MigrateError::VersionMismatch(_))
        ),
        "sqlx alone refuses a changed checksum"
    );

    migrate(&pool)
        .await
        .expect("the comment-only edit is accepted");

    testkit::MIGRATOR
        .run(&pool)
        .await
        .expect("the recorded checksums match the files now");
}

#[sqlx::test(migrations = false)]
async fn a_changed_checksum_that_is_no_known_comment_edit_is_still_refused(pool: PgPool) {
    testkit::MIGRATOR.run(&pool).await.unwrap();
    sqlx::query("UPDATE _sqlx_migrations SET checksum = '\\x00'::bytea")
        .execute(&pool)
        .await
        .unwrap();

    let refused = migrate(&pool)
        .await
        .expect_err("an unknown edit is refused");

    assert!(
        format!("{refused:#}").contains("previously applied"),
        "{refused:#}"
    );
}
