# Entry points; the scripts hold the logic.
.PHONY: run setup generate test

run: ## Run the server on :7000 with the embedded SQLite default (./chirpy.db)
	cargo run --release --bin chirpy

setup: ## Install the tools tests need (.venv with buf, schemathesis, ...; code generators)
	scripts/setup

generate: ## Regenerate the Go, Python and TypeScript SDK code from proto/ (buf generate)
	scripts/generate

test: ## Run the whole test suite, as CI does
	scripts/test
