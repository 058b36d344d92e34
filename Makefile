# Convenience targets; each is a script that also works without make.

.PHONY: module static test demo demo-stop fuzz bench bench-smoke upstream

module:
	bash scripts/build-module.sh

static:
	bash scripts/build-static.sh

test:
	bash scripts/test.sh

demo:
	bash scripts/demo.sh

demo-stop:
	bash scripts/demo.sh stop

fuzz:
	bash scripts/fuzz.sh $${FUZZ_SECONDS:-60}

bench:
	bash bench/run.sh

bench-smoke:
	bash bench/run.sh --smoke

# NGINX_SRC=/path/to/nginx make upstream
upstream:
	bash scripts/build-module.sh
