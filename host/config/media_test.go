package config

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		bad  bool
	}{
		{"100MB", 100_000_000, false},
		{"16MiB", 16 << 20, false},
		{"5000000", 5_000_000, false},
		{"1.5 GB", 1_500_000_000, false},
		{"64kib", 64 << 10, false},
		{"2m", 2_000_000, false},
		{"", 0, true},
		{"lots", 0, true},
		{"-1MB", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d (error %v)", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

func TestMediaKeys(t *testing.T) {
	base := "whatsapp: {app_secret: s, verify_token: v}\n"
	tests := []struct {
		name, yaml string
		key        string // "" when valid
	}{
		{"defaults", "", ""},
		{"s3 complete", "media: {store: s3, s3: {endpoint: \"https://s3.amazonaws.com\", bucket: b, access_key_id: AK, secret_access_key: SK}}", ""},
		{"postgres on postgres", "store: {driver: postgres, url: \"postgres://u:p@h/db\"}\nmedia: {store: postgres}", ""},
		{"unknown store", "media: {store: disk}", "media.store"},
		{"postgres on sqlite", "media: {store: postgres}", "media.store"},
		{"s3 without endpoint", "media: {store: s3, s3: {bucket: b}}", "media.s3.endpoint"},
		{"s3 endpoint with a path", "media: {store: s3, s3: {endpoint: \"https://h/bucket\", bucket: b}}", "media.s3.endpoint"},
		{"s3 half the keys", "media: {store: s3, s3: {endpoint: h:9000, bucket: b, secret_access_key: SK}}", "media.s3.secret_access_key"},
		{"tiny max size", "media: {max_size: 10}", "media.max_size"},
		{"negative retention", "media: {retention_days: -1}", "media.retention_days"},
		{"wait too long", "media: {delivery_wait: 48h}", "media.delivery_wait"},
		{"no attempts", "media: {fetch: {max_attempts: 0}}", "media.fetch.max_attempts"},
		{"max below initial", "media: {fetch: {initial_interval: 1m, max_interval: 10s}}", "media.fetch.max_interval"},
		{"short timeout", "media: {fetch: {timeout: 10ms}}", "media.fetch.timeout"},
		{"unknown key", "media: {bucket: b}", "media.bucket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(base+tt.yaml), nil)
			if tt.key == "" {
				if err != nil {
					t.Fatalf("valid configuration refused: %v", err)
				}
				if c.Media.MaxBytes <= 0 {
					t.Fatalf("MaxBytes = %d", c.Media.MaxBytes)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.key) {
				t.Fatalf("error %v, want one naming %s", err, tt.key)
			}
		})
	}
	c, err := Parse([]byte(base+"store: {path: /var/lib/wahub/wahub.db}\n"), nil)
	if err != nil || c.MediaPath() != "/var/lib/wahub/media" || c.Media.MaxBytes != 100_000_000 {
		t.Fatalf("media defaults: %q, %d, %v", c.MediaPath(), c.Media.MaxBytes, err)
	}
}
