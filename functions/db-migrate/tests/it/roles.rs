//! One database role per function: each logs in and is refused what its SQL does not use;
//! none can change the schema; every table is granted on purpose; and db-migrate sets the
//! roles' passwords from their secrets without the password reaching a server log.

use std::sync::Arc;

use db_migrate::provision::{provision, set_role_passwords};
use serde_json::json;
use shared::config::Secrets;
use shared::db::{Role, as_role};
use sqlx::PgPool;
use testkit::postgres::{Cluster, ClusterOptions, SUPERUSER_PASSWORD};

use crate::helpers::deps;

/// Runs `statement` as `role`; returns the SQLSTATE when the database refuses it.
async fn as_role_run(pool: &PgPool, role: Role, statement: &str) -> Result<(), String> {
    let role_pool = as_role(pool, role);
    let result = sqlx::raw_sql(statement).execute(&role_pool).await;
    role_pool.close().await;
    match result {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(err)) => Err(err.code().unwrap_or_default().into_owned()),
        Err(other) => panic!("{role:?} could not run {statement:?}: {other}"),
    }
}

const INSUFFICIENT_PRIVILEGE: &str = "42501";

async fn refused(pool: &PgPool, role: Role, statement: &str) {
    assert_eq!(
        as_role_run(pool, role, statement).await,
        Err(INSUFFICIENT_PRIVILEGE.to_owned()),
        "{role:?} must be refused {statement:?}"
    );
}

async fn allowed(pool: &PgPool, role: Role, statement: &str) {
    assert_eq!(
        as_role_run(pool, role, statement).await,
        Ok(()),
        "{role:?} must be allowed {statement:?}"
    );
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn each_function_logs_in_as_its_role_and_is_refused_what_it_does_not_use(pool: PgPool) {
    for role in Role::ALL {
        let role_pool = as_role(&pool, role);
        let user: String = sqlx::query_scalar!(r#"SELECT current_user AS "user!""#)
            .fetch_one(&role_pool)
            .await
            .unwrap();
        assert_eq!(user, role.name());
        role_pool.close().await;
    }

    // What the functions' own SQL does is allowed...
    for (role, statement) in [
        (Role::OrderApi, "SELECT customer_email FROM orders"),
        (
            Role::OrderApi,
            "UPDATE payments SET status = 'REFUNDING', updated_at = now() WHERE false",
        ),
        (Role::Notification, "SELECT recipient FROM notifications"),
        (Role::Payment, "SELECT amount FROM payments"),
        (Role::Inventory, "UPDATE stock SET quantity = 0 WHERE false"),
        (Role::OutboxRelay, "DELETE FROM outbox WHERE false"),
    ] {
        allowed(&pool, role, statement).await;
    }

    // ...and what it does not is refused, down to the column where it matters.
    for (role, statement) in [
        (Role::Notification, "SELECT * FROM payments"),
        (Role::Notification, "SELECT customer_email FROM orders"),
        (Role::Notification, "SELECT quantity FROM stock"),
        (Role::OrderApi, "UPDATE payments SET amount = 0 WHERE false"),
        (
            Role::OrderApi,
            "UPDATE payments SET payment_intent_id = 'pi_x' WHERE false",
        ),
        (Role::OrderApi, "DELETE FROM payments WHERE false"),
        (Role::OrderApi, "SELECT * FROM processed_events"),
        (Role::Inventory, "SELECT * FROM payments"),
        (Role::Inventory, "SELECT order_token_hash FROM orders"),
        (Role::Inventory, "DELETE FROM orders WHERE false"),
        (Role::Payment, "SELECT customer_sub FROM orders"),
        (
            Role::Payment,
            "UPDATE orders SET status = 'CONFIRMED' WHERE false",
        ),
        (Role::Payment, "SELECT * FROM notifications"),
        (Role::OutboxRelay, "SELECT recipient FROM notifications"),
        (Role::OutboxRelay, "SELECT * FROM orders"),
        (
            Role::OutboxRelay,
            "INSERT INTO outbox (topic, key, payload) VALUES ('t', 'k', '{}')",
        ),
    ] {
        refused(&pool, role, statement).await;
    }
    for role in [Role::Inventory, Role::Notification, Role::Payment] {
        refused(&pool, role, "SELECT * FROM dead_letters").await;
    }
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn no_function_can_change_the_schema(pool: PgPool) {
    for role in Role::ALL {
        for statement in [
            "DROP TABLE orders",
            "ALTER TABLE orders ADD COLUMN note text",
            "TRUNCATE outbox",
            "CREATE TABLE scratch (id int)",
            "SELECT * FROM _sqlx_migrations",
        ] {
            refused(&pool, role, statement).await;
        }
    }
}

/// A table added later without grants would be out of every function's reach, and one with
/// grants to PUBLIC in everyone's: each table is named by the grants, and none to PUBLIC.
#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn every_table_is_granted_to_a_function_and_none_to_everyone(pool: PgPool) {
    let roles: Vec<String> = Role::ALL
        .iter()
        .map(|role| role.name().to_owned())
        .collect();
    let ungranted = sqlx::query_scalar!(
        r#"SELECT c.relname AS "table!"
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> '_sqlx_migrations'
             AND NOT EXISTS (
                 SELECT FROM unnest($1::text[]) AS r(name)
                 WHERE has_table_privilege(r.name, c.oid, 'SELECT, INSERT, UPDATE, DELETE')
                    OR has_any_column_privilege(r.name, c.oid, 'SELECT, INSERT, UPDATE'))
           ORDER BY 1"#,
        &roles,
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(ungranted.is_empty(), "no function may use {ungranted:?}");

    let public = sqlx::query_scalar!(
        r#"SELECT table_name AS "table!" FROM information_schema.role_table_grants
           WHERE grantee = 'PUBLIC' AND table_schema = 'public'"#
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(public.is_empty(), "granted to everyone: {public:?}");
}

/// In AWS each role logs in with the password of its own secret, which db-migrate sets: on a
/// server with password authentication and every statement logged.
#[tokio::test]
async fn db_migrate_sets_each_roles_password_from_its_secret_and_never_logs_it() {
    testkit::init_tracing();
    let cluster = Cluster::start_with(ClusterOptions {
        settings: &[("log_statement", "all")],
        trust_function_roles: false,
        ..ClusterOptions::default()
    })
    .await;
    let owner = PgPool::connect(&cluster.superuser_url()).await.unwrap();
    let client = testkit::secrets::emulator_client().await;
    let password = format!("role-password-{}", uuid::Uuid::now_v7().simple());
    let secret = testkit::secrets::create(
        &client,
        "rds-payment-",
        &json!({"username": "payment", "password": password}),
    )
    .await;
    let mut deps = deps(owner.clone(), &testkit::kafka::bootstrap());
    deps.secrets = Arc::new(Secrets::from_client(client.clone()));
    deps.role_secrets = vec![(Role::Payment, secret.clone())];

    provision(&deps).await.unwrap();

    let as_payment = PgPool::connect(&cluster.url("payment", &password, "postgres"))
        .await
        .expect("the role logs in with its secret's password");
    let user: String = sqlx::query_scalar!(r#"SELECT current_user AS "user!""#)
        .fetch_one(&as_payment)
        .await
        .unwrap();
    assert_eq!(user, "payment");
    assert!(
        PgPool::connect(&cluster.url("payment", "a-wrong-password", "postgres"))
            .await
            .is_err()
    );
    let log = std::fs::read_to_string(cluster.log_path()).unwrap();
    assert!(
        log.contains("ALTER ROLE payment"),
        "the statement is logged"
    );
    assert!(
        !log.contains(&password),
        "the password reached the server's log"
    );

    // A secret that names another user is refused by name, and changes nothing.
    let foreign = testkit::secrets::create(
        &client,
        "rds-foreign-",
        &json!({"username": "postgres", "password": SUPERUSER_PASSWORD}),
    )
    .await;
    let err = set_role_passwords(&owner, &deps.secrets, &[(Role::Inventory, foreign)])
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("not for role inventory"),
        "{err:#}"
    );
}
