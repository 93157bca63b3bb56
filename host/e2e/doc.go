// Package e2e holds the end-to-end tests: they build the real wahub binary,
// run it as a separate process on loopback with a temporary store, and drive
// it over HTTP and its command line, killing it for real where crash safety
// is the point.
package e2e
