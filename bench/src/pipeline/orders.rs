//! What a run orders: the products, their stock, and a request body whose recipient names the
//! order (`<tag>-<seq>@bench.example`), so that its mail and its row can be told apart.

use serde_json::{Value, json};

/// The products orders spread over (the key of `order-placed`, so several partitions).
pub const PRODUCTS: [&str; 5] = ["Laptop", "Monitor", "Keyboard", "Mouse", "Headphones"];
/// Every product's stock, so that no order of the run is rejected.
pub const STOCK: u32 = 1_000_000;
/// Where the recipients of the run's mails live; the local part names the order.
pub const MAIL_DOMAIN: &str = "bench.example";

/// The original request body plus a recipient that names the order in the run.
pub fn order_body(tag: &str, seq: usize) -> Value {
    json!({
        "customerName": format!("Bench Customer {seq}"),
        "customerEmail": format!("{tag}-{seq}@{MAIL_DOMAIN}"),
        "productName": PRODUCTS[seq % PRODUCTS.len()],
        "quantity": 1,
    })
}

/// The sequence number of the order of run `tag` that a (lower-case) recipient names, if any.
pub fn order_seq(recipient: &str, tag: &str) -> Option<usize> {
    recipient
        .strip_suffix(MAIL_DOMAIN)
        .and_then(|rest| rest.strip_suffix('@'))
        .and_then(|local| local.strip_prefix(tag))
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|seq| seq.parse().ok())
}

/// A `LIKE` pattern for the `customer_email` of every order of run `tag`.
pub fn customer_email_pattern(tag: &str) -> String {
    format!("{tag}-%")
}
