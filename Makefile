# meterline — `make help` lists the targets. Each is a one-liner over scripts/.
.PHONY: help demo test test-rust lint bench bench-instructions results fuzz wasm test-python bench-python test-node bench-node test-openapi faults browser test-browser test-kotlin demo-kotlin test-postgres demo-browser bench-kotlin test-bench-output bench-postgres

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

demo: ## start the server on embedded SQLite and run the quick start against it
	@scripts/demo.sh

test: ## run every test (Rust, wasm32, OpenAPI, bindings, a few s per fuzz target); minutes per suite
	@scripts/test.sh

test-rust: ## the Rust step alone: unit, vector and integration tests of the workspace
	@scripts/test-rust.sh

lint: ## rustfmt, clippy -D warnings, and the bindings' formatters
	@scripts/lint.sh

bench-instructions: ## instruction counts of the core's hot paths (callgrind) vs bench/instructions.json
	@scripts/bench-instructions.sh

bench: ## the benches; each writes bench/results/<id>.json, then bench/RESULTS.md is rendered
	@scripts/bench.sh

bench-postgres: ## durable ingest on PostgreSQL (one node, two nodes) beside SQLite, on a throwaway cluster
	@scripts/bench-postgres.sh

.PHONY: bench-before-after
bench-before-after: ## Python/Node track() and cache hit, release builds of OLD (default 02317b4) vs this tree, interleaved
	@scripts/bench-before-after.sh $(or $(OLD),02317b4)

test-bench-output: ## each bench in a small run, its real output parsed by scripts/results.py (nothing recorded)
	@scripts/test-bench-output.sh

results: ## render bench/RESULTS.md from bench/results/*.json without re-running anything
	@python3 scripts/results.py render

faults: ## the SDK through a fault proxy into the server: FAULT_EVENTS (default 1,000,000) events, faults until delivered
	@scripts/faults.sh

fuzz: ## build every cargo-fuzz target and run each for FUZZ_SECONDS (default 60)
	@scripts/fuzz.sh

wasm: ## build the core's I/O-free half for wasm32-unknown-unknown
	@scripts/check-wasm.sh

test-postgres: ## storage tests on SQLite and PostgreSQL, two server nodes, HAProxy failover (PostgreSQL and HAProxy from apt when missing)
	@scripts/test-postgres.sh

test-openapi: ## the live server against its /openapi.json with schemathesis (installed into target/tools)
	@scripts/test-openapi.sh

test-python: ## the Python package: wheel (maturin) into bindings-python/.venv, pytest against a real server
	@scripts/test-python.sh

bench-python: ## meterline vs posthog vs segment from Python (bench/python_peers.py)
	@scripts/bench-python.sh

test-node: ## the Node package: napi-rs addon (release), node --test against a real server, npm pack + tsc checks
	@scripts/test-node.sh target/test-logs/node-summary.txt

bench-node: ## meterline vs posthog-node vs @segment/analytics-node from Node (bench/node_peers.mjs)
	@node bench/node_peers.mjs

browser: ## meterline-web: both wasm bundles into bindings-wasm/dist/{default,full}/, with their sizes
	@scripts/build-browser.sh

test-browser: ## meterline-web: the bundles in headless Chromium against a real server, the vectors under Node
	@scripts/test-browser.sh target/test-logs/browser-summary.txt

test-kotlin: ## the Kotlin package: uniffi library (release), generated sources, mvn test against a real server, mvn install + quick start, Swift (where `swift` exists)
	@scripts/test-kotlin.sh target/test-logs/kotlin-summary.txt

demo-browser: ## the browser quick start: page + Node token route on a server it starts; headless Chromium run without a display
	@scripts/demo-browser.sh

bench-kotlin: ## Kotlin track() per call beside its floors, posthog-java and Segment analytics-java (one JVM run)
	@scripts/bench-kotlin.sh

demo-kotlin: ## the Kotlin quick start (JVM) from the installed jar, on METERLINE_ENDPOINT or a server it starts
	@scripts/demo-kotlin.sh
