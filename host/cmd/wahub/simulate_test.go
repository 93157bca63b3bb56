package main

import (
	"strings"
	"testing"
	"time"
)

// --now keeps the fixtures' order of time, across files, in both of
// WhatsApp's spellings of a timestamp.
func TestStampNowKeepsOrder(t *testing.T) {
	now := time.Unix(1796419980, 0)
	in := [][]byte{
		[]byte(`{"statuses":[{"timestamp":"1744344500"}],"messages":[{"timestamp": "1744344496"}]}`),
		[]byte(`{"user_preferences":[{"timestamp": 1764001170}]}`),
		[]byte(`{"user_preferences":[{"timestamp":1764000720}],"x":{"timestamp":"1744344496"}}`),
	}
	want := []string{
		`{"statuses":[{"timestamp":"1796419978"}],"messages":[{"timestamp": "1796419977"}]}`,
		`{"user_preferences":[{"timestamp": 1796419980}]}`,
		`{"user_preferences":[{"timestamp":1796419979}],"x":{"timestamp":"1796419977"}}`,
	}
	got := stampNow(in, now)
	for i := range want {
		if string(got[i]) != want[i] {
			t.Errorf("file %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
	if strings.Contains(string(in[0]), "17964") {
		t.Error("stampNow changed its input")
	}
}
