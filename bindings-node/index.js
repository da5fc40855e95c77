'use strict';
// meterline for Node.js: the idiomatic JavaScript API over the native client (native.js,
// built by napi-rs from src/*.rs). lib/client.js is the `Client`, lib/errors.js the error
// classes, lib/json.js the conversion of JavaScript values to JSON text, lib/lifecycle.js the
// exit flush; every behaviour (validation, batching, retries, flushing) is the Rust core's.

const { Client } = require('./lib/client.js');
const { ERROR_CLASSES } = require('./lib/errors.js');

module.exports = { Client, ...ERROR_CLASSES };
