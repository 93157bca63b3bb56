package e2e

// The tests run a binary built by TestMain, which go test's cache does not
// see; importing what the binary is made of makes a change to any of it
// invalidate cached e2e results.
import _ "github.com/wahub/wahub/host/hub"
