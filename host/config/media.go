package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// MediaPath is the local media directory: media.path, or media/ beside
// the SQLite file.
func (c *Config) MediaPath() string {
	if c.Media.Path != "" {
		return c.Media.Path
	}
	return filepath.Join(filepath.Dir(c.Store.Path), "media")
}

// ParseSize reads a size: bytes, or a number with B, KB, MB, GB (powers
// of 1000) or KiB, MiB, GiB (powers of 1024).
func ParseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	if t == "" {
		return 0, fmt.Errorf("empty size")
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("not a size")
	}
	return int64(f * float64(mult)), nil
}

func (v *validator) media() {
	m := &v.c.Media
	v.enum("media.store", m.Store, "local", "postgres", "s3")
	switch m.Store {
	case "postgres":
		if v.c.Store.Driver != "postgres" {
			v.add("media.store", "postgres keeps files in the store's PostgreSQL database, and store.driver is %q; set store.driver: postgres, or media.store: local (a directory) or s3 (a bucket)", v.c.Store.Driver)
		}
	case "s3":
		s3 := m.S3
		if strings.TrimSpace(s3.Bucket) == "" {
			v.add("media.s3.bucket", "must name the bucket when media.store is s3, such as wahub-media")
		}
		if strings.TrimSpace(s3.Endpoint) == "" {
			v.add("media.s3.endpoint", "must name the S3 server when media.store is s3: s3.amazonaws.com, or host:port of MinIO (https://host:port, or http://host:port for a server without TLS)")
		} else if strings.Contains(s3.Endpoint, "://") {
			if u, err := url.Parse(s3.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				v.add("media.s3.endpoint", "%s is not host:port or an http(s)://host:port URL", v.show("media.s3.endpoint", s3.Endpoint))
			} else if u.Path != "" && u.Path != "/" {
				v.add("media.s3.endpoint", "must not have a path (put the bucket in media.s3.bucket and a key prefix in media.s3.prefix)")
			}
		}
		if (s3.AccessKeyID.Reveal() == "") != (s3.SecretAccessKey.Reveal() == "") {
			v.add("media.s3.secret_access_key", "media.s3.access_key_id and media.s3.secret_access_key go together: set both, or neither (then AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or an instance role are used)")
		}
	}
	if n, err := ParseSize(m.MaxSize); err != nil {
		v.add("media.max_size", "%s is not a size: write bytes or a number with a unit, such as 100MB, 16MiB or 5000000", v.show("media.max_size", m.MaxSize))
	} else if n < 1024 {
		v.add("media.max_size", "must be at least 1KB (WhatsApp's documents go up to 100MB)")
	} else {
		m.MaxBytes = n
	}
	if m.RetentionDays < 0 {
		v.add("media.retention_days", "must not be negative (0 keeps files)")
	}
	if m.DeliveryWait < 0 || m.DeliveryWait > 24*time.Hour {
		v.add("media.delivery_wait", "must be from 0 (do not hold events) to 24h")
	}
	f := m.Fetch
	if f.MaxAttempts < 1 {
		v.add("media.fetch.max_attempts", "must be at least 1")
	}
	if f.InitialInterval <= 0 {
		v.add("media.fetch.initial_interval", "must be more than 0, such as 5s")
	}
	if f.MaxInterval < f.InitialInterval {
		v.add("media.fetch.max_interval", "must be at least media.fetch.initial_interval")
	}
	if f.Timeout < time.Second {
		v.add("media.fetch.timeout", "must be at least 1s (it bounds one download, so give a large file time: the default is 10m)")
	}
	if f.Concurrency < 1 || f.Concurrency > 64 {
		v.add("media.fetch.concurrency", "must be from 1 to 64")
	}
}
