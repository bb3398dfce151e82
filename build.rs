//! Link-time layout of the release binary. The functions a running server
//! executes, listed in `linker/symbol-order.txt` by `scripts/symbol-order.sh`,
//! are placed together at the start of its code: the kernel maps a binary's
//! pages in 64 KiB windows around each first use, so code scattered over 28 MB
//! kept most of it resident (README, Performance). Release builds for x86_64
//! Linux only, where Rust links with lld; a listed name a build no longer has
//! is skipped. `DH_SYMBOL_ORDER=off` turns it off (a linker without
//! `--symbol-ordering-file`).

fn main() {
    const ORDER: &str = "linker/symbol-order.txt";
    println!("cargo:rerun-if-changed={ORDER}");
    println!("cargo:rerun-if-env-changed=DH_SYMBOL_ORDER");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let file = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join(ORDER);
    let wanted = var("PROFILE") == "release" && var("TARGET") == "x86_64-unknown-linux-gnu";
    if wanted && var("DH_SYMBOL_ORDER") != "off" && file.is_file() {
        println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}", file.display());
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}
