# Convenience targets; every one is a plain go command you can run yourself.
.PHONY: build test race fuzz bench ci

build:
	go build -o bin/wahub ./host/cmd/wahub

test:
	go test ./...

race:
	go test -race ./...

fuzz:
	go test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=30s ./host/ingest/

bench:
	go test -run='^$$' -bench=. -benchmem ./host/...
	go run ./host/cmd/wahub bench ingest

ci:
	bash .ci/run
