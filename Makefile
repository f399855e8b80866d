# Atrium. The README names two entry points: `make run` and `make test`.

GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
export PATH := $(dir $(GO)):$(PATH)

# roomkiosk links webkit2gtk-4.1 through a pkg-config alias of the 4.0 name
# that webview_go asks for; see cmd/roomkiosk/pkgconfig/.
export PKG_CONFIG_PATH := $(CURDIR)/cmd/roomkiosk/pkgconfig$(if $(PKG_CONFIG_PATH),:$(PKG_CONFIG_PATH))

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
ARTIFACTS ?= $(CURDIR)/artifacts
RUN_DIR := $(CURDIR)/.run
RUN_PORT ?= 8480
# Extra atrium-demo flags for make run, e.g. DEMO_FLAGS=-ice-addr=192.168.1.5
DEMO_FLAGS ?=

.PHONY: all deps build run fleet image test unit lint bench clean

all: build

deps:
	@.ci/deps

build: deps
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

# Runs roomd with simulated devices in .run/, and the kiosk when a display
# exists. atrium-demo runs the "Demo meeting" first (Janus on this machine
# with a simulated guest) and its sample calendar becomes the agenda, unless
# .run/roomd.toml has a [calendar] of its own; without janus or a network
# address it is skipped, with the reason. Ctrl-C stops everything.
run: build
	@mkdir -p $(RUN_DIR)/demo
	@test -f $(RUN_DIR)/roomd.toml || printf '%s\n' \
		'# Development configuration written by make run; edit freely.' \
		'[room]' 'name = "Atrium Demo Room"' \
		'[daemon]' 'state_dir = "$(RUN_DIR)/state"' \
		'[api]' 'socket = "$(RUN_DIR)/roomd.sock"' 'socket_group = ""' 'listen = ["127.0.0.1:$(RUN_PORT)"]' \
		'[hal]' 'simulate = "auto"' > $(RUN_DIR)/roomd.toml
	@set -e; \
	cal=$(RUN_DIR)/demo/calendar.ics; rm -f $$cal; \
	bin/atrium-demo -dir $(RUN_DIR)/demo $(DEMO_FLAGS) 2>>$(RUN_DIR)/demo/atrium-demo.log & demo=$$!; \
	trap 'kill $${roomd:-} $${kiosk:-} 2>/dev/null || true; [ -z "$${roomd:-}" ] || wait $$roomd 2>/dev/null; kill $$demo 2>/dev/null || true; wait' INT TERM EXIT; \
	for i in $$(seq 300); do [ -f $$cal ] && break; kill -0 $$demo 2>/dev/null || break; sleep 0.1; done; \
	cp $(RUN_DIR)/roomd.toml $(RUN_DIR)/roomd.run.toml; \
	if [ ! -f $$cal ]; then \
		echo "No Demo meeting: $$(tail -n 1 $(RUN_DIR)/demo/atrium-demo.log 2>/dev/null)"; \
	elif grep -q '^\[calendar\]' $(RUN_DIR)/roomd.toml; then \
		echo "Demo meeting: $$(grep -o 'janus+ws://[^ "]*' $(RUN_DIR)/demo/atrium-demo.log | tail -n 1) (.run/roomd.toml has its own [calendar])"; \
	else printf '%s\n' '[calendar]' "file = \"$$cal\"" >> $(RUN_DIR)/roomd.run.toml; \
		echo "Demo meeting in the agenda (calendar $$cal; log $(RUN_DIR)/demo/)"; fi; \
	bin/roomd -config $(RUN_DIR)/roomd.run.toml & roomd=$$!; \
	for i in $$(seq 50); do [ -S $(RUN_DIR)/roomd.sock ] && break; kill -0 $$roomd 2>/dev/null || break; sleep 0.1; done; \
	if ! kill -0 $$roomd 2>/dev/null; then wait $$roomd; exit $$?; fi; \
	bin/roomctl -socket $(RUN_DIR)/roomd.sock status; \
	echo; echo "Atrium is running. Kiosk UI: http://127.0.0.1:$(RUN_PORT)/"; \
	echo "Try: bin/roomctl -socket $(RUN_DIR)/roomd.sock devices"; \
	if [ -n "$${DISPLAY:-}$${WAYLAND_DISPLAY:-}" ]; then \
		bin/roomkiosk -url http://127.0.0.1:$(RUN_PORT)/ -fullscreen=false -width 1280 -height 720 & kiosk=$$!; \
	else echo "No display found: open the URL above in a browser."; fi; \
	echo "Press Ctrl-C to stop."; \
	wait $$roomd

# A local fleet server for the room of `make run` (run it in another
# terminal): fleetd on SQLite in .run/fleet, the console on loopback, an
# account "admin" whose password is made once and kept in
# .run/fleet/admin-password (0600).
fleet: build
	@mkdir -p $(RUN_DIR)/fleet && chmod 700 $(RUN_DIR)/fleet
	@test -f $(RUN_DIR)/fleet/admin-password || { \
		(umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > $(RUN_DIR)/fleet/admin-password); \
		bin/fleetd useradd -data $(RUN_DIR)/fleet -username admin < $(RUN_DIR)/fleet/admin-password; }
	@echo "Fleet console: http://127.0.0.1:8080/  (user admin, password in $(RUN_DIR)/fleet/admin-password)"
	@echo "To manage the room of make run, add to $(RUN_DIR)/roomd.toml and restart make run:"
	@printf '  [fleet]\n  server = "https://localhost:8443"\n  ca_file = "%s"\n' "$(RUN_DIR)/fleet/ca/ca.crt"
	bin/fleetd serve -data $(RUN_DIR)/fleet

# The appliance's disk image in $(IMAGE_DIR) (run as root: the Debian
# base is made with mmdebstrap, cached in .cache/image): rootfs.squashfs,
# vmlinuz, initrd.img, image.json and the bootable disk.img. The images
# trust the release repository whose root.json is UPDATE_ROOT; without one,
# a development repository is made once in .run/release (its keys are for
# testing only).
IMAGE_DIR ?= $(ARTIFACTS)/image
IMAGE_COMP ?= zstd
UPDATE_ROOT ?=
image: build
	@set -e; root="$(UPDATE_ROOT)"; \
	if [ -z "$$root" ]; then \
		[ -d $(RUN_DIR)/release/repo ] || bin/fleetd release init -repo $(RUN_DIR)/release/repo -keys $(RUN_DIR)/release/keys; \
		root=$(RUN_DIR)/release/root.json; bin/fleetd release root -repo $(RUN_DIR)/release/repo > $$root; fi; \
	bin/atrium-image build -out $(IMAGE_DIR) -version $(VERSION) -comp $(IMAGE_COMP) \
		-roomd bin/roomd -roomctl bin/roomctl -roomkiosk bin/roomkiosk -update-root $$root

# Every test tier: lint, unit, integration (real roomd and roomctl), real
# Chromium, and the webview under Xvfb.
test: deps lint unit

# The appliance tier (test/appliance) runs on its own after the rest: it
# builds three images and boots them in emulated VMs, about as long as the
# others' time limit, and the race detector has nothing to find in it.
unit:
	@mkdir -p $(ARTIFACTS)
	ATRIUM_ARTIFACTS=$(ARTIFACTS) $(GO) test -race -timeout 15m $$($(GO) list ./... | grep -v '/test/appliance$$')
	ATRIUM_ARTIFACTS=$(ARTIFACTS) $(GO) test -timeout 45m ./test/appliance/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

# Benchmarks, each against the real alternative where there is one; results
# go to bench/results/. Join and Kiosk need root (network namespace), Janus,
# Chromium; Kiosk also Xvfb and WebKitGTK.
bench: build
	@mkdir -p bench/results
	$(GO) test -run '^$$' -bench . -benchtime 10x ./test/integration/ | tee bench/results/startup.txt
	$(GO) test -run '^$$' -bench . ./hal/... | tee bench/results/hal.txt
	$(GO) test -count 1 -run '^TestGuest$$' -timeout 20m ./test/vm/ -args -vm.bench . -vm.benchout $(CURDIR)/bench/results/hal.txt
	$(GO) test -run '^$$' -bench Join -benchtime 1x -timeout 10m ./test/interop/
	$(GO) test -run '^$$' -bench Kiosk -benchtime 1x -timeout 20m ./test/kioskbench/
	$(GO) test -run '^$$' -bench Fleet -benchtime 1x -timeout 20m ./test/fleetbench/
	$(GO) test -run '^$$' -bench OTA -benchtime 1x -timeout 30m ./test/otabench/
	$(GO) test -run '^$$' -bench Image -benchtime 1x -timeout 40m ./test/appliance/

clean:
	rm -rf bin $(RUN_DIR) $(ARTIFACTS)
