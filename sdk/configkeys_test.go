package sdk

import (
	"fmt"
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

func TestConfigRequired(t *testing.T) {
	cfg := Config{Name: "desk"}
	tests := []struct {
		name string
		reqs []Requirement
		want string // "" for nil
	}{
		{"all set", []Requirement{{Key: "token", Set: true}, {Key: "domain", Set: true}}, ""},
		{"none asked", nil, ""},
		{"one missing", []Requirement{{Key: "token", Set: true}, {Key: "domain", Hint: ": the account's name"}},
			"connectors.desk.config.domain: required: the account's name"},
		{"every missing key at once, in order", []Requirement{{Key: "token", Hint: " (xoxb-…)"}, {Key: "channel"}},
			"connectors.desk.config.token: required (xoxb-…)\nconnectors.desk.config.channel: required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := cfg.Required(tc.reqs...)
			if got := fmt.Sprint(err); (tc.want == "" && err != nil) || (tc.want != "" && got != tc.want) {
				t.Errorf("Required = %q, want %q", got, tc.want)
			}
		})
	}
	if got := cfg.Key("priorities.vip"); got != "connectors.desk.config.priorities.vip" {
		t.Errorf("Key = %q", got)
	}
}
