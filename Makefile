# Entry points; the scripts hold the logic.
.PHONY: run setup generate test conformance bench

run: ## Run the server on :7000 with the embedded SQLite default (./chirpy.db)
	cargo run --release --bin chirpy

setup: ## Install the tools tests need (.venv with buf, schemathesis, ...; code generators)
	scripts/setup

generate: ## Regenerate the Go, Python and TypeScript SDK code from proto/ (buf generate)
	scripts/generate

test: ## Run the whole test suite, as CI does
	scripts/test

conformance: ## Run conformance/ (every case × SDK × storage); the matrix goes to target/conformance
	scripts/setup
	cargo build --locked --bin chirpy --bin chirpy-conformance
	target/debug/chirpy-conformance

bench: ## Benchmark Chirpy against embedded Apalis; writes bench/results/ (not part of CI)
	scripts/setup
	cargo build --release --locked --bin chirpy --bin chirpy-bench
	target/release/chirpy-bench --out bench/results
