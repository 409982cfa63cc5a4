//! The stock routes.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;
use sqlx::PgPool;

use crate::support::{call, get, test_app};

fn put_stock(product: &str, body: &str) -> Request<Body> {
    Request::put(format!("/api/admin/stock/{product}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn stock_levels_can_be_set_read_and_listed(pool: PgPool) {
    let app = test_app(&pool).await;

    let created = call(&app, put_stock("Desk%20Lamp", r#"{"quantity": 12}"#)).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    assert_eq!(created.json()["productName"], "Desk Lamp");
    assert_eq!(created.json()["quantity"], 12);
    let updated = call(&app, put_stock("Desk%20Lamp", r#"{"quantity": 0}"#)).await;
    assert_eq!(updated.json()["quantity"], 0);
    call(&app, put_stock("Laptop", r#"{"quantity": 1000000}"#)).await;

    let lamp = call(&app, get("/api/stock/Desk%20Lamp")).await;
    assert_eq!(lamp.status, StatusCode::OK);
    assert_eq!(lamp.json()["quantity"], 0);
    let all = call(&app, get("/api/stock")).await.json();
    assert_eq!(
        all["items"],
        json!([
            {"productName": "Desk Lamp", "quantity": 0, "unitAmount": null, "currency": null,
             "updatedAt": all["items"][0]["updatedAt"]},
            {"productName": "Laptop", "quantity": 1000000, "unitAmount": null, "currency": null,
             "updatedAt": all["items"][1]["updatedAt"]},
        ])
    );
    let level = sqlx::query_scalar!("SELECT quantity FROM stock WHERE product_name = 'Laptop'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(level, 1_000_000);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn stock_levels_outside_zero_to_a_million_are_422_and_change_nothing(pool: PgPool) {
    let app = test_app(&pool).await;
    for body in [
        r#"{"quantity": -1}"#,
        r#"{"quantity": 1000001}"#,
        r#"{"quantity": 2.5}"#,
        r#"{"quantity": "5"}"#,
        r#"{}"#,
    ] {
        let reply = call(&app, put_stock("Laptop", body)).await;
        assert_eq!(reply.invalid_fields(), ["quantity"], "{body}");
    }
    let reply = call(&app, put_stock("%20%20", r#"{"quantity": -1}"#)).await;
    assert_eq!(reply.invalid_fields(), ["productName", "quantity"]);
    call(&app, put_stock("Laptop", "[1]"))
        .await
        .problem(StatusCode::BAD_REQUEST);
    let rows = sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM stock"#)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn an_unknown_product_has_no_stock_level(pool: PgPool) {
    let app = test_app(&pool).await;
    call(&app, get("/api/stock/Unobtainium"))
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_price_is_set_with_the_stock_level_and_kept_when_only_the_level_changes(pool: PgPool) {
    let app = test_app(&pool).await;

    let priced = call(
        &app,
        put_stock(
            "Laptop",
            r#"{"quantity": 5, "unitAmount": 129900, "currency": "eur"}"#,
        ),
    )
    .await;
    assert_eq!(priced.status, StatusCode::OK, "{}", priced.text);
    assert_eq!(priced.json()["unitAmount"], 129900);
    assert_eq!(priced.json()["currency"], "eur");
    let restocked = call(&app, put_stock("Laptop", r#"{"quantity": 9}"#)).await;
    assert_eq!(
        (
            &restocked.json()["quantity"],
            &restocked.json()["unitAmount"],
            &restocked.json()["currency"]
        ),
        (&json!(9), &json!(129900), &json!("eur"))
    );
    // Without a currency a price is in US dollars; 0 is a price (a free product).
    let free = call(
        &app,
        put_stock("Sticker", r#"{"quantity": 1, "unitAmount": 0}"#),
    )
    .await;
    assert_eq!(free.json()["unitAmount"], 0);
    assert_eq!(free.json()["currency"], "usd");
    let repriced = call(
        &app,
        put_stock("Laptop", r#"{"quantity": 9, "unitAmount": 100000000.0}"#),
    )
    .await;
    assert_eq!(repriced.json()["unitAmount"], 100_000_000);
    assert_eq!(repriced.json()["currency"], "usd");

    let laptop = call(&app, get("/api/stock/Laptop")).await.json();
    assert_eq!(
        (&laptop["unitAmount"], &laptop["currency"]),
        (&json!(100_000_000), &json!("usd"))
    );
    let all = call(&app, get("/api/stock")).await.json();
    assert_eq!(all["items"][0]["unitAmount"], 100_000_000);
    assert_eq!(all["items"][1]["unitAmount"], 0);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn bad_prices_are_422_problems_that_name_the_field_and_change_nothing(pool: PgPool) {
    let app = test_app(&pool).await;
    call(
        &app,
        put_stock("Laptop", r#"{"quantity": 5, "unitAmount": 500}"#),
    )
    .await;
    for (body, fields) in [
        (r#"{"quantity": 5, "unitAmount": -1}"#, vec!["unitAmount"]),
        (
            r#"{"quantity": 5, "unitAmount": 100000001}"#,
            vec!["unitAmount"],
        ),
        (r#"{"quantity": 5, "unitAmount": 1e30}"#, vec!["unitAmount"]),
        (r#"{"quantity": 5, "unitAmount": 9.99}"#, vec!["unitAmount"]),
        (
            r#"{"quantity": 5, "unitAmount": "999"}"#,
            vec!["unitAmount"],
        ),
        (
            r#"{"quantity": 5, "unitAmount": 1, "currency": "xyz"}"#,
            vec!["currency"],
        ),
        (
            r#"{"quantity": 5, "unitAmount": 1, "currency": "USD"}"#,
            vec!["currency"],
        ),
        (
            r#"{"quantity": 5, "unitAmount": 1, "currency": 840}"#,
            vec!["currency"],
        ),
        (r#"{"quantity": 5, "currency": "eur"}"#, vec!["currency"]),
        (r#"{"quantity": 5, "unitAmount": null}"#, vec!["unitAmount"]),
        (
            r#"{"quantity": 5, "unitAmount": 1, "currency": null}"#,
            vec!["currency"],
        ),
        (
            r#"{"quantity": -5, "unitAmount": -1, "currency": "dollars"}"#,
            vec!["quantity", "unitAmount", "currency"],
        ),
    ] {
        let reply = call(&app, put_stock("Laptop", body)).await;
        assert_eq!(reply.invalid_fields(), fields, "{body}");
    }
    let reply = call(
        &app,
        put_stock(
            "Laptop",
            r#"{"quantity": 5, "unitAmount": 1, "currency": "xyz"}"#,
        ),
    )
    .await;
    let problem = reply.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        problem.errors[0].message.contains("ISO 4217"),
        "{problem:?}"
    );
    let row = sqlx::query!(
        "SELECT quantity, unit_amount, currency FROM stock WHERE product_name = 'Laptop'"
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (row.quantity, row.unit_amount, row.currency),
        (5, Some(500), Some("usd".to_owned()))
    );
}
