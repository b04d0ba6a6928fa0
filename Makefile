# Every target installs what it needs first; nothing here assumes a pre-existing environment.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test bench token lint typecheck check lock tenants-sync tenants-purge migrate clean

# Install output goes to stderr so that `make -s token` prints only the token.
$(STAMP): requirements.lock pyproject.toml
	@rm -f $(VENV)/.installed-*
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) >&2
	@$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock >&2
	@touch $@

run: $(STAMP)
	$(BIN)/python -m app serve

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m tests.bench

token: $(STAMP)
	@$(BIN)/python -m app token --tenant "$(TENANT)" \
		$(if $(ROLES),--roles "$(ROLES)") $(if $(SCOPE),--scope "$(SCOPE)") \
		$(if $(SUB),--sub "$(SUB)") $(if $(TTL),--ttl "$(TTL)")

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
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
