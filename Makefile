# The README's two commands: `make demo` and `make test`. Each sets up the toolchain itself.
SHELL := /bin/bash
WITH_TOOLCHAIN := source scripts/toolchain.sh &&

# Extra arguments for the demo: `make demo ARGS=--keep` (or `make demo-keep`).
ARGS ?=

.PHONY: setup demo demo-keep test build bench images
setup:
	@$(WITH_TOOLCHAIN) pnpm install --frozen-lockfile --reporter=append-only

# The Debian packages it needs (installed when root, else the command to run is printed), the build (turbo's cache
# makes it quick after the first time), then the demo itself — run by make directly, not by turbo, so Ctrl-C and
# SIGTERM reach it and it stops cleanly.
demo: setup
	@bash scripts/install-system-deps.sh --demo
	@$(WITH_TOOLCHAIN) pnpm exec turbo run build --filter=@podidentity/e2e... --output-logs=errors-only
	@$(WITH_TOOLCHAIN) exec node packages/e2e/dist/demo.js $(ARGS)

demo-keep: ARGS = --keep
demo-keep: demo

test: setup
	@$(WITH_TOOLCHAIN) pnpm run ci

build: setup
	@$(WITH_TOOLCHAIN) pnpm run build

bench: setup
	@$(WITH_TOOLCHAIN) pnpm run bench

# The NMI and MIC images as OCI layouts and oci-archives in out/images, with no container engine (as root; see
# scripts/build-images.sh and docs/install.md "Images" for pushing them to a registry).
images: build
	@$(WITH_TOOLCHAIN) bash scripts/build-images.sh
