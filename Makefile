# Convenience targets; every one is a plain go command you can run yourself.
.PHONY: build test race fuzz bench ci

# The version is git describe's (a tag, or the commit, "-dirty" with
# uncommitted changes); `wahub version` prints it.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)

build:
	go build -ldflags "-X main.version=$(VERSION)" -o bin/wahub ./host/cmd/wahub

test:
	go test ./...

race:
	go test -race ./...

fuzz:
	go test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=30s ./host/ingest/

# Each figure next to its same-run baseline: ingest vs verify+parse,
# delivery out of process vs in process, routing (Route) vs the JSON
# parse of the same event, the sender (outbox included) vs the Graph
# client alone.
bench:
	go run ./host/cmd/wahub bench ingest
	go run ./host/cmd/wahub bench send
	go run ./host/cmd/wahub bench delivery
	go test -run='^$$' -bench='Route200|Decide200|ParseEventJSON' -benchmem ./host/route/
	go test -run='^$$' -bench='Sender|GraphOnly' -benchtime=5000x ./host/outbound/
	go test -run='^$$' -bench=. -benchmem ./host/store/ ./host/ingest/

ci:
	bash .ci/run
