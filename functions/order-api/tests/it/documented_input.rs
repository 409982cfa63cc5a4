//! The OpenAPI document and the code agree on input: a value the document allows is accepted,
//! a value it rules out is refused. These are the rules API fuzzing (testkit's fuzz-api) found
//! stated too loosely: names, the list cursors, and integers written with a zero fraction.

use axum::http::StatusCode;
use regex::Regex;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{Reply, call, get, order_body, place, post_json, test_app};

/// The served document.
async fn document(app: &axum::Router) -> Value {
    call(app, get("/api/openapi.json")).await.json()
}

/// The schema at `pointer`, following one `$ref`.
fn schema<'a>(document: &'a Value, pointer: &str) -> &'a Value {
    let schema = document
        .pointer(pointer)
        .unwrap_or_else(|| panic!("{pointer} is in the document"));
    match schema["$ref"].as_str() {
        Some(reference) => document
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{reference} resolves")),
        None => schema,
    }
}

/// The `pattern` of the schema at `pointer`, compiled.
fn pattern(document: &Value, pointer: &str) -> Regex {
    let pattern = schema(document, pointer)["pattern"]
        .as_str()
        .unwrap_or_else(|| panic!("{pointer} has a pattern"));
    Regex::new(pattern).expect("the pattern compiles")
}

/// Percent-encodes every byte but ASCII letters and digits, for a path segment.
fn path_segment(raw: &str) -> String {
    raw.bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => char::from(byte).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Accepted (`accepted`) or refused with a 422 naming `field`, and nothing else.
fn assert_judged(
    reply: &Reply,
    accepted: bool,
    accepted_status: StatusCode,
    field: &str,
    what: &str,
) {
    if accepted {
        assert_eq!(reply.status, accepted_status, "{what}: {}", reply.text);
    } else {
        assert_eq!(reply.invalid_fields(), [field], "{what}");
    }
}

/// Each of `raws` as the cursor of the list at `list`: accepted (200) exactly when the
/// documented `cursor` pattern admits it, otherwise refused with a 422 naming `cursor`.
async fn assert_cursors_judged_as_documented(
    app: &axum::Router,
    list: &str,
    cursor: &Regex,
    raws: impl IntoIterator<Item = String>,
) {
    for raw in raws {
        let reply = call(app, get(&format!("{list}?cursor={raw}"))).await;
        assert_judged(
            &reply,
            cursor.is_match(&raw),
            StatusCode::OK,
            "cursor",
            &format!("cursor {raw:?}"),
        );
    }
}

/// Names at the edges of the rule: white space and control characters at the ends and
/// inside, the length limit before and after trimming, and text that is merely unusual.
fn names() -> Vec<String> {
    let mut names: Vec<String> = [
        "Laptop",
        " Laptop\n",
        "\tLaptop\r\n",
        "\u{85}Laptop\u{a0}",
        "Lap\u{7}top",
        "Lap\u{85}top",
        "Lap\u{0}top",
        "Laptop\u{1b}",
        "\u{7f}Laptop",
        "Desk Lamp",
        "Desk\u{a0}Lamp",
        "\u{feff}Laptop",
        "\u{200b}",
        "   ",
        "\u{3000}",
        "🚀 Ünïcode",
        "Robert'); DROP TABLE orders;--",
        "a/b?c#d",
    ]
    .map(str::to_owned)
    .to_vec();
    names.push("x".repeat(255));
    names.push("x".repeat(256));
    names.push(format!("{}Ada{}", " ".repeat(300), "\n".repeat(3)));
    names.push(format!("x{}x", "\u{2003}".repeat(253)));
    names
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn the_documented_name_pattern_admits_exactly_the_names_the_api_accepts(pool: PgPool) {
    let app = test_app(&pool).await;
    let document = document(&app).await;
    let body = "/components/schemas/PlaceOrderRequest/properties";
    let customer = pattern(&document, &format!("{body}/customerName"));
    let product = pattern(&document, &format!("{body}/productName"));
    assert_eq!(customer.as_str(), shared::domain::NAME_PATTERN);
    assert_eq!(product.as_str(), shared::domain::NAME_PATTERN);
    for (path, route) in [
        ("~1api~1stock~1{productName}", "get"),
        ("~1api~1admin~1stock~1{productName}", "put"),
    ] {
        let path = pattern(
            &document,
            &format!("/paths/{path}/{route}/parameters/0/schema"),
        );
        assert_eq!(path.as_str(), shared::domain::NAME_PATTERN, "{route}");
    }

    let mut accepted = 0;
    for name in names() {
        let allowed = product.is_match(&name);
        accepted += usize::from(allowed);

        let as_customer = json!({"customerName": name, "productName": "Laptop", "quantity": 1});
        let reply = call(&app, post_json("/api/orders", as_customer.to_string())).await;
        assert_judged(
            &reply,
            allowed,
            StatusCode::CREATED,
            "customerName",
            &format!("customerName {name:?}"),
        );

        let as_product = json!({"customerName": "Ada", "productName": name, "quantity": 1});
        let reply = call(&app, post_json("/api/orders", as_product.to_string())).await;
        assert_judged(
            &reply,
            allowed,
            StatusCode::CREATED,
            "productName",
            &format!("productName {name:?}"),
        );

        // No stock is recorded for any of them: 404 when the name is valid.
        let reply = call(&app, get(&format!("/api/stock/{}", path_segment(&name)))).await;
        assert_judged(
            &reply,
            allowed,
            StatusCode::NOT_FOUND,
            "productName",
            &format!("path {name:?}"),
        );
    }
    assert!(
        accepted > 5 && accepted < names().len() - 5,
        "both sides are exercised"
    );
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn control_characters_in_a_name_are_422_in_the_body_and_in_the_path(pool: PgPool) {
    let app = test_app(&pool).await;
    let body = json!({"customerName": "Ada\u{7}", "productName": "^\u{17}", "quantity": 1});
    let reply = call(&app, post_json("/api/orders", body.to_string())).await;
    assert_eq!(reply.invalid_fields(), ["customerName", "productName"]);
    let problem = reply.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        problem.errors[1].message.contains("control characters"),
        "{problem:?}"
    );

    let reply = call(&app, get("/api/stock/%5E%17")).await;
    assert_eq!(reply.invalid_fields(), ["productName"]);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn the_documented_cursor_pattern_admits_exactly_the_cursors_the_api_accepts(pool: PgPool) {
    let app = test_app(&pool).await;
    let document = document(&app).await;
    let cursor = pattern(
        &document,
        "/paths/~1api~1admin~1orders/get/parameters/3/schema",
    );
    assert_eq!(
        document["paths"]["/api/admin/orders"]["get"]["parameters"][3]["name"],
        "cursor"
    );
    assert_eq!(cursor.as_str(), order_api::paging::CURSOR_PATTERN);

    for n in 0..3 {
        place(&app, &order_body(&format!("C{n}"), "Laptop", 1)).await;
    }
    let page = call(&app, get("/api/admin/orders?limit=1")).await.json();
    let issued = page["nextCursor"].as_str().expect("a next page").to_owned();
    assert!(
        cursor.is_match(&issued),
        "{issued} matches the documented pattern"
    );

    let id = "019ab5c0000170008000000000000001";
    let raws = [
        issued.clone(),
        format!("0_{id}"),
        format!("9999999999999999_{id}"),
        format!("10000000000000000_{id}"),
        format!("1_{}", id.to_uppercase()),
        format!("1_{}", &id[1..]),
        format!("-300000000000000000_{id}"),
        "1_019ab5c0-0001-7000-8000-000000000001".to_owned(),
        // The earlier, base64 form, whose time could lie outside what PostgreSQL stores.
        "LTMwMDAwMDAwMDAwMDAwMDAwMHwwMTlhYjVjMC0wMDAxLTcwMDAtODAwMC0wMDAwMDAwMDAwMDE".to_owned(),
        "garbage".to_owned(),
    ];
    assert_cursors_judged_as_documented(&app, "/api/admin/orders", &cursor, raws).await;
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn the_dead_letter_list_documents_and_accepts_the_same_cursors(pool: PgPool) {
    let app = test_app(&pool).await;
    let document = document(&app).await;
    let parameters = document["paths"]["/api/admin/dead-letters"]["get"]["parameters"]
        .as_array()
        .expect("the dead letter list has parameters");
    let at = |name: &str| {
        parameters
            .iter()
            .position(|parameter| parameter["name"] == name)
            .unwrap_or_else(|| panic!("a {name} parameter"))
    };
    let cursor = pattern(
        &document,
        &format!(
            "/paths/~1api~1admin~1dead-letters/get/parameters/{}/schema",
            at("cursor")
        ),
    );
    assert_eq!(cursor.as_str(), order_api::paging::CURSOR_PATTERN);
    let consumer = schema(
        &document,
        &format!(
            "/paths/~1api~1admin~1dead-letters/get/parameters/{}/schema",
            at("consumer")
        ),
    );
    assert_eq!(consumer["minLength"], json!(1), "an empty consumer is 422");
    // Any other consumer name lists none, even one PostgreSQL cannot store.
    for name in ["nobody", "in%00ventory", "%E2%80%8B"] {
        let reply = call(
            &app,
            get(&format!("/api/admin/dead-letters?consumer={name}")),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{name}: {}", reply.text);
        assert_eq!(reply.json()["items"], json!([]), "{name}");
    }

    let id = "019ab5c0000170008000000000000001";
    let raws = [
        format!("0_{id}"),
        format!("1764000000123456_{}", "0".repeat(32)),
        format!("1764000000123456_{:032x}", 42),
        // Beyond every dead letter id: still a position, after all of them.
        format!("9999999999999999_{}", "f".repeat(32)),
        format!("10000000000000000_{id}"),
        format!("1_{}", id.to_uppercase()),
        format!("1_{}", &id[1..]),
        "1_2a".to_owned(),
        "garbage".to_owned(),
        String::new(),
    ];
    assert_cursors_judged_as_documented(&app, "/api/admin/dead-letters", &cursor, raws).await;
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn an_empty_cursor_is_422_as_the_document_says(pool: PgPool) {
    let app = test_app(&pool).await;
    let document = document(&app).await;
    let cursor = pattern(
        &document,
        "/paths/~1api~1admin~1orders/get/parameters/3/schema",
    );
    assert!(!cursor.is_match(""));
    for query in ["cursor=", "customerEmail=0%400.com&limit=20&cursor="] {
        let reply = call(&app, get(&format!("/api/admin/orders?{query}"))).await;
        assert_eq!(reply.invalid_fields(), ["cursor"], "{query}");
    }
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_quantity_written_with_a_zero_fraction_is_that_integer(pool: PgPool) {
    let app = test_app(&pool).await;
    for (written, quantity) in [("989.0", 989), ("2.000", 2), ("1e3", 1000), ("1.5e1", 15)] {
        let body =
            format!(r#"{{"customerName": "Ada", "productName": "Laptop", "quantity": {written}}}"#);
        let reply = call(&app, post_json("/api/orders", body)).await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{written}: {}",
            reply.text
        );
        let id = reply.json()["orderId"].as_str().unwrap().to_owned();
        let order = call(&app, get(&format!("/api/admin/orders/{id}")))
            .await
            .json();
        assert_eq!(order["quantity"], json!(quantity), "{written}");
    }
    for written in ["989.5", "0.0", "10001.0", "1e30"] {
        let body =
            format!(r#"{{"customerName": "Ada", "productName": "Laptop", "quantity": {written}}}"#);
        let reply = call(&app, post_json("/api/orders", body)).await;
        assert_eq!(reply.invalid_fields(), ["quantity"], "{written}");
    }

    let reply = call(
        &app,
        axum::http::Request::put("/api/admin/stock/Laptop")
            .header("content-type", "application/json")
            .body(r#"{"quantity": 50.0}"#.into())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json()["quantity"], json!(50));
}
