package sdk

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// The hub's go-plugin reads plugin log lines as hclog JSON: a timestamp in
// exactly its layout, and hclog's level names. Anything else arrives as a
// DEBUG line with the level and fields lost.
func TestLoggerSpeaksHclogJSON(t *testing.T) {
	var buf bytes.Buffer
	newLogger(&buf).Warn("slack hook: refused a request", "status", 401)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%s: %v", buf.Bytes(), err)
	}
	ts, _ := line["@timestamp"].(string)
	// go-plugin's log_entry.go parses with this layout.
	if _, err := time.Parse("2006-01-02T15:04:05.000000Z07:00", ts); err != nil {
		t.Errorf("@timestamp %q: %v", ts, err)
	}
	if line["@level"] != "warn" || line["@message"] != "slack hook: refused a request" || line["status"] != float64(401) {
		t.Errorf("line %v", line)
	}
}
