# Hearth's entry points. `make help` lists them.
ENV ?=
DEPLOY_ENVS := proxmox aws
NAMESPACE ?= hearth
KUBECTL ?= kubectl
COMPOSE ?= docker compose
VENV_BIN ?= .venv/bin
RENDER_DIR ?= build/k8s

.DEFAULT_GOAL := help
.PHONY: help run test mutation backend-up backend-down deploy-backend lint k8s-render

help:
	@echo "make run                      start the demo (scripts/run.sh)"
	@echo "make test                     run the test suite (scripts/test.sh)"
	@echo "make mutation [MODULES=...]   mutation score of the security core (scripts/mutation.sh)"
	@echo "make backend-up               docker compose up -d --build"
	@echo "make backend-down             docker compose down"
	@echo "make deploy-backend ENV=E     kubectl apply -k k8s/overlays/E, E in: $(DEPLOY_ENVS)"
	@echo "make lint                     ruff and hadolint"
	@echo "make k8s-render               render base and overlays into $(RENDER_DIR)/"

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

# Not part of `make test`: it runs the covering tests once per mutant (tens of minutes).
mutation:
	bash scripts/mutation.sh $(MODULES)

backend-up:
	$(COMPOSE) up -d --build

backend-down:
	$(COMPOSE) down

# The Secret is made by the operator (k8s/secrets.env.example lists its keys),
# so check for it before applying anything. Jobs are immutable: the finished
# migration Job goes first, and the deploy waits for the new one.
deploy-backend:
	@case " $(DEPLOY_ENVS) " in *" $(ENV) "*) [ -n "$(ENV)" ] ;; *) false ;; esac \
		|| { echo "ENV must be one of: $(DEPLOY_ENVS) (got '$(ENV)')" >&2; exit 2; }
	@$(KUBECTL) -n $(NAMESPACE) get secret hearth-secrets >/dev/null 2>&1 || { \
		echo "Secret $(NAMESPACE)/hearth-secrets is missing; create it first:" >&2; \
		echo "  cp k8s/secrets.env.example k8s/secrets.env  # fill in the values" >&2; \
		echo "  $(KUBECTL) create namespace $(NAMESPACE)" >&2; \
		echo "  $(KUBECTL) -n $(NAMESPACE) create secret generic hearth-secrets --from-env-file=k8s/secrets.env" >&2; \
		exit 1; }
	$(KUBECTL) -n $(NAMESPACE) delete job hearth-migrate --ignore-not-found
	$(KUBECTL) apply -k k8s/overlays/$(ENV)
	$(KUBECTL) -n $(NAMESPACE) wait --for=condition=complete job/hearth-migrate --timeout=15m

lint:
	$(VENV_BIN)/ruff check .
	$(VENV_BIN)/hadolint Dockerfile deploy/appliance.Dockerfile

k8s-render:
	mkdir -p $(RENDER_DIR)
	$(KUBECTL) kustomize k8s/base > $(RENDER_DIR)/base.yaml
	$(KUBECTL) kustomize k8s/overlays/proxmox > $(RENDER_DIR)/proxmox.yaml
	$(KUBECTL) kustomize k8s/overlays/aws > $(RENDER_DIR)/aws.yaml
