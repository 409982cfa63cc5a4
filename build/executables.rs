//! The build script of every Lambda function (and of the benchmarks, whose hello-world
//! baseline must be linked the same way): link the crate's binaries as position-dependent
//! executables.
//!
//! A position-independent executable carries a relocation for every pointer in its data
//! (about 74,000 in order-api), which the dynamic loader applies at every start, touching
//! each page they are on. Without them order-api's init is about 1 ms, a quarter, shorter
//! (docs/scale.md, "Init: position-dependent executables"). The cost is that the
//! executable's own code and data load at a fixed address, as Go's Lambda binaries do by
//! default; the stack, the heap and the shared libraries are still randomised.
//!
//! Only the binaries: `-no-pie` on a shared library (a proc-macro) would make it an
//! executable, which is why this is not a workspace-wide `rustflags`.

fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
