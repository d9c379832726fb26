//! Records the target triple for `fastipc._fastipc.build_info()` (Cargo gives it only to build
//! scripts).

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| String::from("unknown"));
    println!("cargo:rustc-env=FASTIPC_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
