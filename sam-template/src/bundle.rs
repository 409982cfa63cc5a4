//! What `sam build` leaves for each function: `.aws-sam/build/<LogicalId>/bootstrap`, the
//! executable that `sam deploy` zips. `scripts/test sam_build` reports each one's size raw
//! and deflated (as in the zip that Lambda fetches on a cold start) and fails on one over
//! Lambda's 10 MB limit, on one linked position-independent, and on a `rust-cargolambda`
//! function of the template that left no bootstrap (the `bundle-report` binary).
//!
//! The limit applies to the deflated size by default: librdkafka with its vendored OpenSSL and
//! curl, plus the AWS SDK's TLS stack, put every raw binary near 20 MB (README.md, "Binary
//! size"). `LAMBDA_SIZE_LIMIT=raw` applies it to the raw binary instead.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::Path;

use flate2::Compression;
use flate2::write::DeflateEncoder;

use crate::{Template, TemplateError};

/// Lambda's limit on a deployment package, in bytes.
pub const MAX_BYTES: u64 = 10 * 1024 * 1024;

/// The `Metadata.BuildMethod` of the functions that are workspace binaries, built by
/// `cargo lambda build` into a `bootstrap` each.
pub const CARGO_LAMBDA: &str = "rust-cargolambda";

/// ELF `e_type` of a position-dependent executable, what `build/executables.rs` links.
pub const ET_EXEC: u16 = 2;
/// ELF `e_type` of a shared object, which a position-independent executable (PIE) is: its
/// start-up relocations cost about a quarter of the init (docs/scale.md).
pub const ET_DYN: u16 = 3;

/// Why the report could not be made (as opposed to a bootstrap that fails it).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("LAMBDA_SIZE_LIMIT={0}: expected `deflated` (the default) or `raw`")]
    Limit(String),
    #[error(transparent)]
    Template(#[from] TemplateError),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Which size [`MAX_BYTES`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Deflated,
    Raw,
}

impl Limit {
    /// From `LAMBDA_SIZE_LIMIT`: unset, empty or `deflated`, else `raw`; anything else is a
    /// typo that would otherwise silently check the other size.
    pub fn from_setting(setting: Option<&str>) -> Result<Self, Error> {
        match setting.unwrap_or_default() {
            "" | "deflated" => Ok(Self::Deflated),
            "raw" => Ok(Self::Raw),
            other => Err(Error::Limit(other.to_owned())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Deflated => "deflated",
            Self::Raw => "raw",
        }
    }
}

/// The `e_type` of an ELF file from its first bytes, in the byte order its header declares;
/// `None` when they are not an ELF header.
pub fn elf_type(header: &[u8]) -> Option<u16> {
    if header.len() < 18 || !header.starts_with(b"\x7fELF") {
        return None;
    }
    let bytes = [header[16], header[17]];
    match header[5] {
        1 => Some(u16::from_le_bytes(bytes)),
        2 => Some(u16::from_be_bytes(bytes)),
        _ => None,
    }
}

/// The size of `bytes` deflated at level 6, the default of zlib, which `sam deploy` zips
/// with (and `gzip -6`). zlib itself rather than a Rust port: order-api's bootstrap is
/// within a few percent of the limit, where another compressor's few percent would matter.
pub fn deflated_len(bytes: &[u8]) -> io::Result<u64> {
    let mut encoder = DeflateEncoder::new(ByteCount(0), Compression::new(6));
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?.0)
}

/// A writer that only counts what it is given.
struct ByteCount(u64);

impl Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Bytes in MB (MiB) with one decimal, as the table shows them.
pub fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1_048_576.0)
}

/// One function's bootstrap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    /// The function's logical id: the name of its folder in the build folder.
    pub function: String,
    pub raw: u64,
    pub deflated: u64,
    /// See [`elf_type`].
    pub elf_type: Option<u16>,
}

impl Bootstrap {
    pub fn from_bytes(function: &str, bytes: &[u8]) -> io::Result<Self> {
        Ok(Self {
            function: function.to_owned(),
            raw: bytes.len() as u64,
            deflated: deflated_len(bytes)?,
            elf_type: elf_type(bytes),
        })
    }

    /// What is wrong with it, in the words the table shows; empty when nothing is.
    pub fn problems(&self, limit: Limit) -> Vec<String> {
        let mut problems = Vec::new();
        let limited = match limit {
            Limit::Deflated => self.deflated,
            Limit::Raw => self.raw,
        };
        if limited > MAX_BYTES {
            problems.push("OVER 10 MB".to_owned());
        }
        match self.elf_type {
            Some(ET_EXEC) => {}
            Some(ET_DYN) => problems.push("POSITION-INDEPENDENT (see build/executables.rs)".into()),
            Some(other) => problems.push(format!("ELF TYPE {other}, NOT AN EXECUTABLE")),
            None => problems.push("NOT AN ELF FILE".to_owned()),
        }
        problems
    }

    /// Its line of the table: name, sizes, then its problems.
    pub fn row(&self, limit: Limit) -> String {
        let mut row = format!(
            "  {:<22} {:>10} {:>10}",
            self.function,
            mb(self.raw),
            mb(self.deflated)
        );
        for problem in self.problems(limit) {
            row.push_str("  ");
            row.push_str(&problem);
        }
        row
    }
}

/// The bootstraps in `build_dir` (one folder per function), by function name.
pub fn read_bootstraps(build_dir: &Path) -> Result<Vec<Bootstrap>, Error> {
    let mut bootstraps = Vec::new();
    for entry in std::fs::read_dir(build_dir).map_err(io_error(build_dir))? {
        let dir = entry.map_err(io_error(build_dir))?.path();
        let path = dir.join("bootstrap");
        if !path.is_file() {
            continue;
        }
        let function = dir.file_name().unwrap_or_default().to_string_lossy();
        let bytes = std::fs::read(&path).map_err(io_error(&path))?;
        bootstraps.push(Bootstrap::from_bytes(&function, &bytes).map_err(io_error(&path))?);
    }
    bootstraps.sort_by(|a, b| a.function.cmp(&b.function));
    Ok(bootstraps)
}

/// The functions that must leave a bootstrap: those built with [`CARGO_LAMBDA`].
pub fn expected_functions(template: &Template) -> BTreeSet<String> {
    template
        .functions
        .iter()
        .filter(|f| f.build_method.as_deref() == Some(CARGO_LAMBDA))
        .map(|f| f.logical_id.clone())
        .collect()
}

/// The report on one build folder.
#[derive(Debug, Clone)]
pub struct Report {
    /// The build folder as given, for the messages.
    pub build_dir: String,
    pub limit: Limit,
    pub bootstraps: Vec<Bootstrap>,
    /// See [`expected_functions`].
    pub expected: BTreeSet<String>,
}

impl Report {
    /// The failures that concern the build as a whole: a function without its bootstrap, or a
    /// bootstrap of no [`CARGO_LAMBDA`] function (a stale folder, or a renamed function).
    pub fn missing(&self) -> Vec<String> {
        let found: BTreeSet<String> = self.bootstraps.iter().map(|b| b.function.clone()).collect();
        if found == self.expected {
            return Vec::new();
        }
        let mut lines = vec![format!(
            "expected {} bootstraps in {} (one per {CARGO_LAMBDA} function), found {}",
            self.expected.len(),
            self.build_dir,
            found.len()
        )];
        for function in self.expected.difference(&found) {
            lines.push(format!("  no bootstrap for {function}"));
        }
        for function in found.difference(&self.expected) {
            lines.push(format!(
                "  {function}: not a {CARGO_LAMBDA} function of the template"
            ));
        }
        lines
    }

    /// Whether every bootstrap is in order and none is missing.
    pub fn passed(&self) -> bool {
        self.missing().is_empty()
            && self
                .bootstraps
                .iter()
                .all(|b| b.problems(self.limit).is_empty())
    }

    /// The whole report: the limit, the table, then what is missing.
    pub fn render(&self) -> String {
        let mut lines = vec![
            format!("limit {MAX_BYTES} bytes on the {} size", self.limit.name()),
            format!("  {:<22} {:>10} {:>10}", "function", "raw MB", "zip MB"),
        ];
        lines.extend(self.bootstraps.iter().map(|b| b.row(self.limit)));
        lines.extend(self.missing());
        lines.join("\n") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first 18 bytes of an ELF header: magic, class, byte order, then `e_type`.
    fn header(byte_order: u8, e_type: [u8; 2]) -> Vec<u8> {
        let mut header = b"\x7fELF".to_vec();
        header.extend([2, byte_order, 1]);
        header.resize(16, 0);
        header.extend(e_type);
        header
    }

    fn bootstrap(function: &str, raw: u64, deflated: u64, elf_type: u16) -> Bootstrap {
        Bootstrap {
            function: function.to_owned(),
            raw,
            deflated,
            elf_type: Some(elf_type),
        }
    }

    #[test]
    fn elf_type_follows_the_declared_byte_order() {
        assert_eq!(elf_type(&header(1, [2, 0])), Some(ET_EXEC));
        assert_eq!(elf_type(&header(1, [3, 0])), Some(ET_DYN));
        assert_eq!(elf_type(&header(2, [0, 3])), Some(ET_DYN));
        assert_eq!(elf_type(&header(3, [2, 0])), None);
        assert_eq!(elf_type(&header(1, [2, 0])[..17]), None);
        assert_eq!(elf_type(b"#!/bin/sh\necho not an executable\n"), None);
    }

    #[test]
    fn the_setting_names_the_limited_size() {
        assert_eq!(Limit::from_setting(None).unwrap(), Limit::Deflated);
        assert_eq!(Limit::from_setting(Some("")).unwrap(), Limit::Deflated);
        assert_eq!(
            Limit::from_setting(Some("deflated")).unwrap(),
            Limit::Deflated
        );
        assert_eq!(Limit::from_setting(Some("raw")).unwrap(), Limit::Raw);
        assert!(Limit::from_setting(Some("zip")).is_err());
    }

    #[test]
    fn the_limit_applies_to_the_chosen_size_only_above_10_mb() {
        let big = bootstrap("Big", 20 * 1024 * 1024, MAX_BYTES, ET_EXEC);
        assert!(big.problems(Limit::Deflated).is_empty());
        assert_eq!(big.problems(Limit::Raw), ["OVER 10 MB"]);
        let over = bootstrap("Over", MAX_BYTES + 1, MAX_BYTES + 1, ET_EXEC);
        assert_eq!(over.problems(Limit::Deflated), ["OVER 10 MB"]);
    }

    #[test]
    fn only_position_dependent_executables_pass() {
        let pie = bootstrap("Pie", 1, 1, ET_DYN);
        assert_eq!(
            pie.problems(Limit::Deflated),
            ["POSITION-INDEPENDENT (see build/executables.rs)"]
        );
        let object = bootstrap("Object", 1, 1, 1);
        assert_eq!(
            object.problems(Limit::Deflated),
            ["ELF TYPE 1, NOT AN EXECUTABLE"]
        );
        let script = Bootstrap::from_bytes("Script", b"#!/bin/sh\n").unwrap();
        assert_eq!(script.problems(Limit::Deflated), ["NOT AN ELF FILE"]);
    }

    #[test]
    fn rows_line_up_under_the_header() {
        let ok = bootstrap("OrderApiFunction", 20_971_520, 10_276_044, ET_EXEC);
        assert_eq!(
            ok.row(Limit::Deflated),
            "  OrderApiFunction             20.0        9.8"
        );
        let bad = bootstrap("InventoryFunction", MAX_BYTES + 1, 1_048_576, ET_DYN);
        assert_eq!(
            bad.row(Limit::Raw),
            "  InventoryFunction            10.0        1.0  OVER 10 MB  \
             POSITION-INDEPENDENT (see build/executables.rs)"
        );
    }

    #[test]
    fn deflating_counts_the_compressed_bytes() {
        assert!(deflated_len(&[0; 100_000]).unwrap() < 1_000);
        // Bytes that do not repeat cannot shrink: stored blocks cost a few bytes more.
        let mut state = 1u32;
        let noise: Vec<u8> = (0..100_000)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (state >> 24) as u8
            })
            .collect();
        assert!(deflated_len(&noise).unwrap() >= 100_000);
    }

    #[test]
    fn the_report_names_missing_and_unexpected_bootstraps() {
        let report = Report {
            build_dir: ".aws-sam/build".to_owned(),
            limit: Limit::Deflated,
            bootstraps: vec![
                bootstrap("InventoryFunction", 1, 1, ET_EXEC),
                bootstrap("OldFunction", 1, 1, ET_EXEC),
            ],
            expected: ["InventoryFunction", "PaymentFunction"]
                .map(str::to_owned)
                .into(),
        };
        assert!(!report.passed());
        assert_eq!(
            report.missing(),
            [
                "expected 2 bootstraps in .aws-sam/build (one per rust-cargolambda function), found 2",
                "  no bootstrap for PaymentFunction",
                "  OldFunction: not a rust-cargolambda function of the template",
            ]
        );
        let complete = Report {
            bootstraps: vec![bootstrap("InventoryFunction", 1, 1, ET_EXEC)],
            expected: ["InventoryFunction".to_owned()].into(),
            ..report
        };
        assert!(complete.passed());
        assert_eq!(
            complete.render(),
            "limit 10485760 bytes on the deflated size\n\
             \x20 function                   raw MB     zip MB\n\
             \x20 InventoryFunction             0.0        0.0\n"
        );
    }

    #[test]
    fn bootstraps_are_read_from_the_function_folders() {
        let dir = std::env::temp_dir().join(format!("bundle-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("B/")).unwrap();
        std::fs::create_dir_all(dir.join("A/")).unwrap();
        std::fs::create_dir_all(dir.join("NoBootstrap/")).unwrap();
        std::fs::write(dir.join("B/bootstrap"), header(1, [2, 0])).unwrap();
        std::fs::write(dir.join("A/bootstrap"), header(1, [3, 0])).unwrap();
        let bootstraps = read_bootstraps(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let found: Vec<_> = bootstraps
            .iter()
            .map(|b| (b.function.as_str(), b.raw, b.elf_type))
            .collect();
        assert_eq!(found, [("A", 18, Some(ET_DYN)), ("B", 18, Some(ET_EXEC))]);
        assert!(read_bootstraps(&dir).is_err());
    }
}
