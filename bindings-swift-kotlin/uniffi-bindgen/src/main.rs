//! `uniffi-bindgen` at the workspace's uniffi version (`scripts/kotlin-generate.sh` runs it):
//! `uniffi-bindgen generate --library <libmeterline_uniffi.so> --language kotlin|swift --out-dir DIR`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
