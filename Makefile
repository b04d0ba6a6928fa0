# Every target installs what it needs first; nothing here assumes a pre-existing environment.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

# The API documentation's Swagger UI, served by the service itself (never from a CDN): the npm registry's
# swagger-ui-dist at a pinned version, checked against the pinned integrity (`npm view swagger-ui-dist@VERSION
# dist.integrity`). The service serves $(SWAGGER_UI) at /schema/assets.
SWAGGER_UI_VERSION := 5.35.0
SWAGGER_UI_INTEGRITY := sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==
SWAGGER_UI := vendor/swagger-ui
SWAGGER_UI_STAMP := $(SWAGGER_UI)/.version-$(SWAGGER_UI_VERSION)
SWAGGER_UI_FILES := swagger-ui-bundle.js swagger-ui-standalone-preset.js swagger-ui.css favicon-32x32.png LICENSE NOTICE
# Debian's Chromium: the offline docs test opens the docs pages in it, and `make docs-screenshot` photographs them.
CHROMIUM := /usr/bin/chromium
# jq: the README's walk-through pipes through it, and tests/e2e/test_readme_walkthrough.py runs the walk-through.
JQ := /usr/bin/jq
SCREENSHOT ?= docs-screenshot.png

.PHONY: run test bench bench-hooks bench-scale token user lint typecheck check lock tenants-sync tenants-purge migrate clean docs-assets docs-screenshot

# Install output goes to stderr so that `make -s token` prints only the token.
$(STAMP): requirements.lock pyproject.toml
	@rm -f $(VENV)/.installed-*
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) >&2
	@$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock >&2
	@touch $@

# The development default lets webhooks reach a receiver on this machine (plain http to loopback); see README.
run: $(STAMP) $(SWAGGER_UI_STAMP)
	WEBHOOK_ALLOW_LOOPBACK=$${WEBHOOK_ALLOW_LOOPBACK:-true} $(BIN)/python -m app serve

test: $(STAMP) $(SWAGGER_UI_STAMP) $(CHROMIUM) $(JQ)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

docs-assets: $(SWAGGER_UI_STAMP)

$(SWAGGER_UI_STAMP):
	@command -v npm >/dev/null || { echo "npm fetches Swagger UI for the docs pages: apt-get install -y npm" >&2; exit 1; }
	@rm -rf $(SWAGGER_UI) $(SWAGGER_UI).download && mkdir -p $(SWAGGER_UI).download
	@cd $(SWAGGER_UI).download && npm pack --silent swagger-ui-dist@$(SWAGGER_UI_VERSION) >/dev/null
	@got="sha512-$$(openssl dgst -sha512 -binary $(SWAGGER_UI).download/swagger-ui-dist-$(SWAGGER_UI_VERSION).tgz | base64 -w0)"; \
	 if [ "$$got" != "$(SWAGGER_UI_INTEGRITY)" ]; then \
	   echo "swagger-ui-dist $(SWAGGER_UI_VERSION): integrity $$got, expected $(SWAGGER_UI_INTEGRITY)" >&2; exit 1; fi
	@tar -xzf $(SWAGGER_UI).download/swagger-ui-dist-$(SWAGGER_UI_VERSION).tgz -C $(SWAGGER_UI).download \
		$(addprefix package/,$(SWAGGER_UI_FILES))
	@mv $(SWAGGER_UI).download/package $(SWAGGER_UI) && rm -rf $(SWAGGER_UI).download
	@touch $@

# Installed the way `make bench` installs wrk: apt-get as root (or password-less sudo), after an `apt-get update`
# if the first attempt fails; otherwise stop with the one command to run. The Debian package is named like the
# program.
$(CHROMIUM) $(JQ): /usr/bin/%:
	@if [ "$$(id -u)" = 0 ]; then apt="apt-get"; elif sudo -n true 2>/dev/null; then apt="sudo -n apt-get"; \
	 else echo "$* is needed by the tests: sudo apt-get install -y $*" >&2; exit 1; fi; \
	 echo "$* not found: $$apt install -y $*" >&2; \
	 export DEBIAN_FRONTEND=noninteractive; \
	 $$apt install -y -q $* >&2 || { $$apt update -q >&2 && $$apt install -y -q $* >&2; } || \
	 { echo "could not install $*; run: sudo apt-get update && sudo apt-get install -y $*" >&2; exit 1; }
	@test -x $@

# A PNG of the API documentation page as a browser without network renders it (a throwaway cluster and server).
docs-screenshot: $(STAMP) $(SWAGGER_UI_STAMP) $(CHROMIUM)
	$(BIN)/python -m tests.docs_screenshot $(SCREENSHOT)

bench: $(STAMP)
	$(BIN)/python -m tests.bench

# Only what webhooks cost: PATCH with the subscriptions off and on, and PostgreSQL's statements (about two minutes).
bench-hooks: $(STAMP)
	$(BIN)/python -m tests.bench.hooks

# The ticket list, GET and PATCH at 10,000 and 1,000,000 tickets of one tenant (about 15 minutes; see README).
bench-scale: $(STAMP)
	$(BIN)/python -m tests.bench.scale

token: $(STAMP)
	@$(BIN)/python -m app token --tenant "$(TENANT)" \
		$(if $(ROLES),--roles "$(ROLES)") $(if $(SCOPE),--scope "$(SCOPE)") \
		$(if $(SUB),--sub "$(SUB)") $(if $(TTL),--ttl "$(TTL)")

# A user of the tenant's builtin realm, created or reset: prints only its (generated, or PASSWORD's) password.
user: $(STAMP)
	@$(BIN)/python -m app user --tenant "$(TENANT)" --email "$(EMAIL)" \
		$(if $(ROLE),--role "$(ROLE)") $(if $(PASSWORD),--password "$(PASSWORD)") $(if $(NAME),--name "$(NAME)")

tenants-sync: $(STAMP)
	$(BIN)/python -m app tenants sync

# Delete every row of a disabled tenant: TENANT=<slug or id> shows what would go; add YES=1 to delete it.
tenants-purge: $(STAMP)
	$(BIN)/python -m app tenants purge "$(TENANT)" $(if $(YES),--yes)

migrate: $(STAMP)
	$(BIN)/python -m app migrate

lint: $(STAMP)
	$(BIN)/ruff check app tests migrations
	$(BIN)/ruff format --check app tests migrations
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

# Regenerate the pinned lock file after changing dependencies in pyproject.toml.
lock: $(STAMP)
	$(BIN)/python -m pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) $(SWAGGER_UI) .pytest_cache .mypy_cache .ruff_cache
