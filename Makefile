# The README's two commands: `make demo` and `make test`. Each sets up the toolchain itself.
SHELL := /bin/bash
WITH_TOOLCHAIN := source scripts/toolchain.sh &&

.PHONY: setup demo test build bench
setup:
	@$(WITH_TOOLCHAIN) pnpm install --frozen-lockfile --reporter=append-only

demo: setup
	@$(WITH_TOOLCHAIN) pnpm run demo

test: setup
	@$(WITH_TOOLCHAIN) pnpm run ci

build: setup
	@$(WITH_TOOLCHAIN) pnpm run build

bench: setup
	@$(WITH_TOOLCHAIN) pnpm run bench
