// The C target of the generated FFI header (include/); nothing to compile here.
