//! The domain types read back from PostgreSQL: a row is decoded into them once, and a corrupt
//! row is an error instead of a value nobody checked.

use shared::domain::{EmailAddress, Money, OrderStatus, ProductName, Quantity};
use sqlx::PgPool;

#[sqlx::test]
async fn amount_and_currency_are_read_as_one_money_value(pool: PgPool) {
    let money: Money = sqlx::query_scalar("SELECT (5997::bigint, 'usd'::text)")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(money.to_string(), "59.97 USD");

    let none: Option<Money> = sqlx::query_scalar(
        "SELECT CASE WHEN a IS NULL THEN NULL ELSE (a, c) END FROM (VALUES (NULL::bigint, NULL::text)) v(a, c)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(none, None);

    for corrupt in [
        "SELECT (-1::bigint, 'usd'::text)",
        "SELECT (1::bigint, 'USD'::text)",
    ] {
        let err = sqlx::query_scalar::<_, Money>(corrupt)
            .fetch_one(&pool)
            .await
            .unwrap_err();
        assert!(
            matches!(err, sqlx::Error::ColumnDecode { .. }),
            "{corrupt}: {err}"
        );
    }
}

#[sqlx::test]
async fn names_addresses_quantities_and_statuses_are_parsed_as_they_are_read(pool: PgPool) {
    let (product, email, quantity, status): (ProductName, EmailAddress, Quantity, OrderStatus) =
        sqlx::query_as("SELECT 'Laptop'::text, 'ada@example.com'::text, 3::int, 'PLACED'::text")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (product.as_str(), email.as_str(), quantity.get(), status),
        ("Laptop", "ada@example.com", 3, OrderStatus::Placed)
    );
    for corrupt in [
        "SELECT ''::text, 'ada@example.com'::text, 3::int, 'PLACED'::text",
        "SELECT 'Laptop'::text, 'ada@example'::text, 3::int, 'PLACED'::text",
        "SELECT 'Laptop'::text, 'ada@example.com'::text, 0::int, 'PLACED'::text",
        "SELECT 'Laptop'::text, 'ada@example.com'::text, 3::int, 'placed'::text",
    ] {
        let row = sqlx::query_as::<_, (ProductName, EmailAddress, Quantity, OrderStatus)>(corrupt)
            .fetch_one(&pool)
            .await;
        assert!(
            matches!(row, Err(sqlx::Error::ColumnDecode { .. })),
            "{corrupt}"
        );
    }
}
