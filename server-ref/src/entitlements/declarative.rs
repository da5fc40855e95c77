//! The `[catalog]` section of `meterline.toml` (applied at start; see `apply_declarative`).
