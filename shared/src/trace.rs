//! One trace per order (docs/observability.md, "Tracing"): the W3C Trace Context
//! `traceparent` an order's request arrives with, or a new one, travels with the order's
//! events (outbox row, Kafka header, CloudEvents attribute) and is continued by every
//! consumer. Every log line of a request or a record carries its `trace_id`.
//!
//! [`TraceContext`] is the parsed `traceparent`. It is plain data, not tied to the tracing
//! subscriber, because it has to outlive the process: it is stored with the outbox row and
//! read back by the relay or by another function. [`export`] sends the spans of these
//! contexts to X-Ray in AWS.

pub mod export;

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The HTTP header, the Kafka header and the CloudEvents attribute that carry the context.
pub const TRACEPARENT: &str = "traceparent";

/// The only version this code writes; later versions are read as the spec says.
const VERSION: &str = "00";
/// `00-` + 32 + `-` + 16 + `-` + 2.
const VERSION_00_LEN: usize = 55;
/// The `sampled` trace flag.
const SAMPLED: u8 = 0x01;

/// Where a request or a record sits in its trace: the trace it belongs to, its own span id
/// (which is the parent id of everything it causes) and the trace flags; for a span this
/// process started, also the span it continues.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: TraceId,
    span_id: SpanId,
    flags: u8,
    /// Not part of `traceparent`: known only to the process that made the child.
    parent_id: Option<SpanId>,
}

/// The 16-byte trace id, shown as 32 lowercase hex digits (the `trace_id` log field).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId([u8; 16]);

/// The 8-byte span id, shown as 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId([u8; 8]);

/// Why a `traceparent` value was refused; the caller then starts a new trace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceParentError {
    #[error("expected `version-traceid-parentid-flags`, got {0} characters")]
    Shape(usize),
    #[error("{field} must be {digits} lowercase hex digits")]
    NotHex { field: &'static str, digits: usize },
    #[error("version ff is forbidden")]
    ForbiddenVersion,
    #[error("{0} must not be all zeros")]
    AllZeros(&'static str),
    #[error("version 00 has exactly four fields")]
    TrailingData,
}

impl TraceContext {
    /// A new, sampled trace. The trace id starts with the current Unix time in seconds, as
    /// X-Ray's own ids do, so that X-Ray accepts it; the rest is random.
    pub fn new_root() -> Self {
        let mut trace_id: [u8; 16] = rand::random();
        let seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        trace_id[..4].copy_from_slice(&(seconds as u32).to_be_bytes());
        Self {
            trace_id: TraceId(trace_id),
            span_id: SpanId::random(),
            flags: SAMPLED,
            parent_id: None,
        }
    }

    /// The next span of the same trace, whose parent is this one.
    pub fn child(&self) -> Self {
        Self {
            span_id: SpanId::random(),
            parent_id: Some(self.span_id),
            ..*self
        }
    }

    /// A child span of `parent`, or the root of a new trace when there is no parent.
    pub fn continuing(parent: Option<Self>) -> Self {
        parent.map_or_else(Self::new_root, |parent| parent.child())
    }

    /// The context a request or record arrived with, if it carries a valid one. A malformed
    /// one is logged and dropped, never an error: tracing must not turn good work away.
    pub fn parse_incoming(incoming: Option<&[u8]>) -> Option<Self> {
        match Self::parse_bytes(incoming?) {
            Ok(parent) => Some(parent),
            Err(err) => {
                tracing::info!(error = %err, "malformed traceparent: starting a new trace");
                None
            }
        }
    }

    /// Parses header bytes (Kafka headers are bytes; HTTP header values may not be UTF-8).
    pub fn parse_bytes(raw: &[u8]) -> Result<Self, TraceParentError> {
        std::str::from_utf8(raw)
            .map_err(|_| TraceParentError::Shape(raw.len()))?
            .parse()
    }

    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// The span this one continues, when this process made it with [`Self::child`].
    pub fn parent_id(&self) -> Option<SpanId> {
        self.parent_id
    }

    pub fn is_sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }
}

impl SpanId {
    fn random() -> Self {
        loop {
            let id: [u8; 8] = rand::random();
            if id != [0; 8] {
                return Self(id);
            }
        }
    }
}

/// Lowercase hex digits of exactly `N` bytes, as the spec requires.
fn lower_hex<const N: usize>(raw: &str, field: &'static str) -> Result<[u8; N], TraceParentError> {
    let refused = TraceParentError::NotHex {
        field,
        digits: 2 * N,
    };
    if raw.len() != 2 * N || !raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(refused);
    }
    let mut bytes = [0; N];
    hex::decode_to_slice(raw, &mut bytes).map_err(|_| refused)?;
    Ok(bytes)
}

impl FromStr for TraceContext {
    type Err = TraceParentError;

    /// W3C Trace Context, section 3.2: a version other than `00` may carry more fields after
    /// the fourth, which are ignored; `00` has exactly four.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let raw = raw.trim();
        if raw.len() < VERSION_00_LEN {
            return Err(TraceParentError::Shape(raw.len()));
        }
        let mut fields = raw.splitn(5, '-');
        let (Some(version), Some(trace_id), Some(span_id), Some(flags)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(TraceParentError::Shape(raw.len()));
        };
        let [version] = lower_hex::<1>(version, "version")?;
        if version == 0xff {
            return Err(TraceParentError::ForbiddenVersion);
        }
        let trace_id = lower_hex::<16>(trace_id, "trace-id")?;
        let span_id = lower_hex::<8>(span_id, "parent-id")?;
        let [flags] = lower_hex::<1>(flags, "trace-flags")?;
        if version == 0 && fields.next().is_some() {
            return Err(TraceParentError::TrailingData);
        }
        if trace_id == [0; 16] {
            return Err(TraceParentError::AllZeros("trace-id"));
        }
        if span_id == [0; 8] {
            return Err(TraceParentError::AllZeros("parent-id"));
        }
        Ok(Self {
            trace_id: TraceId(trace_id),
            span_id: SpanId(span_id),
            flags,
            parent_id: None,
        })
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{VERSION}-{}-{}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceContext({self})")
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for TraceContext {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TraceContext {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_spec_example_round_trips() {
        let context: TraceContext = EXAMPLE.parse().unwrap();
        assert_eq!(
            context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(context.span_id().to_string(), "00f067aa0ba902b7");
        assert!(context.is_sampled());
        assert_eq!(context.to_string(), EXAMPLE);
        let unsampled: TraceContext = EXAMPLE.replace("-01", "-00").parse().unwrap();
        assert!(!unsampled.is_sampled());
    }

    #[test]
    fn malformed_values_are_refused_with_the_reason() {
        let cases = [
            ("", TraceParentError::Shape(0)),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                TraceParentError::Shape(52),
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                TraceParentError::NotHex {
                    field: "trace-id",
                    digits: 32,
                },
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
                TraceParentError::NotHex {
                    field: "trace-id",
                    digits: 32,
                },
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
                TraceParentError::NotHex {
                    field: "parent-id",
                    digits: 16,
                },
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                TraceParentError::ForbiddenVersion,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                TraceParentError::AllZeros("trace-id"),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                TraceParentError::AllZeros("parent-id"),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
                TraceParentError::TrailingData,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1x",
                TraceParentError::NotHex {
                    field: "trace-flags",
                    digits: 2,
                },
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(raw.parse::<TraceContext>(), Err(expected), "{raw:?}");
        }
        assert!(TraceContext::parse_bytes(&[0xff; 55]).is_err());
    }

    #[test]
    fn a_later_version_may_carry_more_fields() {
        let future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes";
        let context: TraceContext = future.parse().unwrap();
        // Written back in the one version this code knows.
        assert_eq!(context.to_string(), EXAMPLE);
    }

    #[test]
    fn a_child_keeps_the_trace_and_flags_with_a_new_span() {
        let parent: TraceContext = EXAMPLE.parse().unwrap();
        let child = parent.child();
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_eq!(child.is_sampled(), parent.is_sampled());
        assert_ne!(child.span_id(), parent.span_id());
        assert_eq!(child.parent_id(), Some(parent.span_id()));
        assert_eq!(parent.parent_id(), None);
        let continued =
            TraceContext::continuing(TraceContext::parse_incoming(Some(EXAMPLE.as_bytes())));
        assert_eq!(continued.trace_id(), parent.trace_id());
        assert_ne!(continued.span_id(), parent.span_id());
    }

    #[test]
    fn new_traces_are_valid_sampled_and_start_with_the_time_as_x_ray_ids_do() {
        let first = TraceContext::new_root();
        let second = TraceContext::new_root();
        assert_ne!(first.trace_id(), second.trace_id());
        assert!(first.is_sampled());
        assert_eq!(first.to_string().parse::<TraceContext>(), Ok(first));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let stamped = u64::from(u32::from_be_bytes(
            first.trace_id().0[..4].try_into().unwrap(),
        ));
        assert!(now.abs_diff(stamped) <= 2, "{stamped} vs {now}");
    }

    #[test]
    fn missing_or_malformed_context_starts_a_new_trace() {
        let example: TraceContext = EXAMPLE.parse().unwrap();
        for incoming in [None, Some(&b"garbage"[..])] {
            let started = TraceContext::continuing(TraceContext::parse_incoming(incoming));
            assert_ne!(started.trace_id(), example.trace_id());
            assert!(started.is_sampled());
        }
    }

    #[test]
    fn it_serialises_as_the_header_value() {
        let context: TraceContext = EXAMPLE.parse().unwrap();
        let json = serde_json::to_value(context).unwrap();
        assert_eq!(json, EXAMPLE);
        assert_eq!(
            serde_json::from_value::<TraceContext>(json).unwrap(),
            context
        );
        assert!(serde_json::from_value::<TraceContext>("00-zz".into()).is_err());
    }
}
