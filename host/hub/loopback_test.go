package hub

import "testing"

func TestLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"":                    true,
		"localhost":           true,
		"LOCALHOST:8080":      true,
		"127.0.0.1":           true,
		"127.0.0.1:8080":      true,
		"127.8.9.10:1":        true,
		"[::1]:8080":          true,
		"[::1]":               true,
		"evil.example":        false,
		"evil.example:8080":   false,
		"localhost.evil.com":  false,
		"127.0.0.1.nip.io":    false,
		"10.0.0.1:8080":       false,
		"[::ffff:10.0.0.1]:1": false,
		"0.0.0.0:8080":        false,
	} {
		if got := loopbackHost(host); got != want {
			t.Errorf("loopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}
