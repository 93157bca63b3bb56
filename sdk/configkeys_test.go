package sdk

import (
	"strings"
	"testing"
)

// An unknown key's error lists the keys the section accepts.
func TestDecodeNamesTheKnownKeys(t *testing.T) {
	type syncCfg struct {
		Interval   string   `json:"interval"`
		Properties []string `json:"properties,omitempty"`
	}
	type cfg struct {
		Token   string   `json:"token"`
		Channel string   `json:"channel"`
		Sync    *syncCfg `json:"sync"`
		Ignored string   `json:"-"`
		secret  string
	}
	for _, tc := range []struct{ raw, want string }{
		{`{"tokn": "x"}`, `connectors.c.config.tokn: unknown key (known keys here: channel, sync, token)`},
		{`{"sync": {"intervall": "5m"}}`, `connectors.c.config.sync.intervall: unknown key (known keys here: interval, properties)`},
	} {
		var v cfg
		err := Config{Name: "c", Raw: []byte(tc.raw)}.Decode(&v)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Decode(%s) = %v, want %s", tc.raw, err, tc.want)
		}
		_ = strings.TrimSpace(v.secret)
	}
}
