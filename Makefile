# One command each, from a fresh clone:  make demo   |   make test
PY      := .venv/bin/python
ARCHCC  := $(PY) -m archcc
STAMP   := .venv/.installed
ifeq ($(shell uname -m),aarch64)
TORCH_PKGS := torch==2.9.1 torchvision==0.24.1
else
TORCH_PKGS := torch==2.14.1 torchvision==0.29.1
endif

.PHONY: demo test lint generated docs golden bench clean

$(STAMP): pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	# pinned torch + torchvision pairs that lie on disk on these machines (no download);
	# torchvision is needed by timm, whose models are parity references
	$(PY) -m pip install -q $(TORCH_PKGS)
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)            ## build every example spec, then run a generated model
	$(ARCHCC) build specs/*.yaml -o generated
	$(PY) examples/run_generated.py

test: $(STAMP)            ## the whole suite (GPU tests skip without a GPU)
	$(PY) -m pytest -q

lint: $(STAMP)
	.venv/bin/ruff check .

generated: $(STAMP) docs  ## regenerate generated/ (and the editor schema) from specs/
	$(ARCHCC) build specs/*.yaml -o generated
	$(ARCHCC) schema -o schema/archcc.schema.json

docs: $(STAMP)            ## regenerate docs/ops.md from the op registry
	ARCHCC_PLUGINS=0 $(PY) -c "from archcc.parser.catalog import ops_reference; \
		open('docs/ops.md', 'w').write(ops_reference())"

golden: $(STAMP)          ## re-record golden files after an intended change
	ARCHCC_UPDATE_GOLDEN=1 $(PY) -m pytest -q tests/test_golden.py

bench: $(STAMP)
	$(PY) benchmarks/bench_foundation.py

clean:
	rm -rf .venv .pytest_cache
