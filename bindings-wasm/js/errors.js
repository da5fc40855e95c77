// The error classes: the core's one list (`ErrorClass` in core/src/error_class.rs: name,
// parent, default code), so the browser throws exactly the classes Node and Python do, with
// the same codes. `checkAgainstCore()` (run by `init()`) fails loudly on any drift.
//
// This file is the module's head and exports; the classes themselves are the Node package's
// (bindings-node/lib/errors.js, between its "shared with meterline-web" markers), put in
// place of the @shared line by scripts/build-browser.sh, so both packages define them once.

// @shared from bindings-node/lib/errors.js

export { ERROR_CLASSES, checkAgainstCore, fromReport, toError };
