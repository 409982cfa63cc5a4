//! Reading JSON bodies with the API's own rules: the wrong content type is `415`, a body over
//! the limit `413`, malformed JSON or a non-object `400`. Field values are checked later,
//! all at once, when the body is converted into a domain type.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

/// A JSON object body, deserialised into `T` (whose fields should be lenient, e.g.
/// `Option<serde_json::Value>`, so that every field error can be reported together).
#[derive(Debug)]
pub struct JsonObject<T>(pub T);

impl<S, T> FromRequest<S> for JsonObject<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(request.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection| match rejection.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => {
                        ApiError::Status(StatusCode::PAYLOAD_TOO_LARGE)
                    }
                    _ => ApiError::bad_request("The request body could not be read"),
                })?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|err| ApiError::bad_request(format!("The body is not valid JSON: {err}")))?;
        if !value.is_object() {
            return Err(ApiError::bad_request("The body must be a JSON object"));
        }
        serde_json::from_value(value)
            .map(Self)
            .map_err(|err| ApiError::bad_request(format!("The body could not be read: {err}")))
    }
}

/// `application/json` or any `application/*+json`, with or without parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence
        .strip_prefix("application/")
        .is_some_and(|subtype| subtype == "json" || subtype.ends_with("+json"))
}

/// Field-by-field readers of a lenient body, each returning a client-safe message.
pub mod field {
    use serde_json::Value;

    /// A required string.
    pub fn string(value: Option<&Value>) -> Result<&str, String> {
        match value {
            None | Some(Value::Null) => Err("is required".to_owned()),
            Some(Value::String(text)) => Ok(text),
            Some(_) => Err("must be a string".to_owned()),
        }
    }

    /// An optional string; `null` counts as absent.
    pub fn optional_string(value: Option<&Value>) -> Result<Option<&str>, String> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err("must be a string".to_owned()),
        }
    }

    /// A required integer: a JSON number without a fractional part, written `2`, `2.0` or
    /// `2e0` alike (JSON Schema's `integer`, and what encoders that hold numbers as floats
    /// send); not a string, not a fraction such as `1.5`. Integers beyond `i64` come back as
    /// `i64::MAX` / `i64::MIN`, so that the range check names them as out of range.
    pub fn integer(value: Option<&Value>) -> Result<i64, String> {
        match value {
            None | Some(Value::Null) => Err("is required".to_owned()),
            Some(Value::Number(number)) => {
                if let Some(n) = number.as_i64() {
                    Ok(n)
                } else if number.is_u64() {
                    Ok(i64::MAX)
                } else {
                    match number.as_f64() {
                        // `as` saturates at the ends of i64, which is what the range check needs.
                        Some(float) if float.is_finite() && float.fract() == 0.0 => {
                            Ok(float as i64)
                        }
                        _ => Err(format!("must be an integer, got {number}")),
                    }
                }
            }
            Some(_) => Err("must be an integer".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_content_type(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn json_media_types_are_recognised() {
        assert!(is_json(&with_content_type("application/json")));
        assert!(is_json(&with_content_type(
            "Application/JSON; charset=utf-8"
        )));
        assert!(is_json(&with_content_type("application/merge-patch+json")));
        assert!(!is_json(&with_content_type("text/plain")));
        assert!(!is_json(&with_content_type(
            "application/x-www-form-urlencoded"
        )));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn numbers_with_a_zero_fraction_are_the_integers_they_equal() {
        let read = |text: &str| field::integer(Some(&serde_json::from_str(text).unwrap()));
        assert_eq!(read("989.0"), Ok(989));
        assert_eq!(read("2.000"), Ok(2));
        assert_eq!(read("1e3"), Ok(1000));
        assert_eq!(read("1.5e1"), Ok(15));
        assert_eq!(read("-0.0"), Ok(0));
        assert_eq!(read("-7.0"), Ok(-7));
        assert_eq!(read("1e30"), Ok(i64::MAX));
        assert_eq!(read("-1e30"), Ok(i64::MIN));
        assert_eq!(
            read("989.5"),
            Err("must be an integer, got 989.5".to_owned())
        );
    }

    #[test]
    fn integers_are_told_apart_from_fractions_and_strings() {
        use serde_json::json;
        assert_eq!(field::integer(Some(&json!(5))), Ok(5));
        assert_eq!(field::integer(Some(&json!(-1))), Ok(-1));
        assert_eq!(field::integer(Some(&json!(u64::MAX))), Ok(i64::MAX));
        assert!(field::integer(Some(&json!(1.5))).is_err());
        assert!(field::integer(Some(&json!(-0.25))).is_err());
        assert!(field::integer(Some(&json!("1"))).is_err());
        assert!(field::integer(None).is_err());
        assert!(field::integer(Some(&json!(null))).is_err());
    }
}
