//go:build race

package e2e

// The hub binary is built with the race detector when the tests run with it.
const raceEnabled = true
