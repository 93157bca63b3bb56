package supervisor

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
)

// syncBuffer is a bytes.Buffer the bridge's flush timer may write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// What go-plugin hands the bridge, and the records the hub's log gets.
func TestPluginLogBridge(t *testing.T) {
	for _, tc := range []struct {
		name     string
		stopping bool
		emit     func(l hclog.Logger)
		want     []map[string]any // keys each record must have (nil value: must be absent)
	}{
		{
			name: "a plugin record keeps one time",
			emit: func(l hclog.Logger) {
				l.Warn("slack: rate limited", "retry_in", "1m0s", "timestamp", "2026-12-04T18:00:00.000Z")
			},
			want: []map[string]any{{"level": "WARN", "msg": "slack: rate limited", "retry_in": "1m0s", "timestamp": nil, "module": "plugin"}},
		},
		{
			name: "a panic is one record",
			emit: func(l hclog.Logger) {
				l.Error("panic: runtime error: index out of range [3] with length 1")
				l.Error("")
				l.Error("goroutine 7 [running]:")
				l.Error("main.(*conn).Deliver(...)")
				l.Error("\t/src/conn.go:42 +0x1d")
				l.Info("next record", "k", "v")
			},
			want: []map[string]any{
				{"level": "ERROR", "msg": "plugin panicked", "panic": "panic: runtime error: index out of range [3] with length 1",
					"stack": "\ngoroutine 7 [running]:\nmain.(*conn).Deliver(...)\n\t/src/conn.go:42 +0x1d"},
				{"level": "INFO", "msg": "next record", "k": "v"},
			},
		},
		{
			// What CI saw: go-plugin's stdio stream noticed the EOF while
			// the dying plugin still wrote its stack.
			name: "go-plugin's own lines inside a stack do not cut it",
			emit: func(l hclog.Logger) {
				p, stdio := l.Named("outside-connector"), l.Named("stdio")
				p.Error("panic: assignment to entry in nil map")
				p.Error("goroutine 41 [running]:")
				p.Error("main.conn.Deliver(...)")
				stdio.Debug("received EOF, stopping recv loop", "err", "EOF")
				p.Error("google.golang.org/grpc.(*Server).processRPC(...)")
				p.Error("\t/grpc/server.go:1450 +0x1250")
				l.Error(exitedMsg, "error", "exit status 2")
				p.Info("after", "k", "v")
			},
			want: []map[string]any{
				{"level": "DEBUG", "msg": "received EOF, stopping recv loop", "module": "plugin.stdio"},
				{"level": "ERROR", "msg": exitedMsg, "module": "plugin"},
				{"level": "ERROR", "msg": "plugin panicked", "panic": "panic: assignment to entry in nil map", "module": "plugin.outside-connector",
					"stack": "goroutine 41 [running]:\nmain.conn.Deliver(...)\ngoogle.golang.org/grpc.(*Server).processRPC(...)\n\t/grpc/server.go:1450 +0x1250"},
				{"level": "INFO", "msg": "after", "k": "v"},
			},
		},
		{
			name: "a crash is an error",
			emit: func(l hclog.Logger) {
				l.Error(exitedMsg, "error", "signal: killed")
			},
			want: []map[string]any{{"level": "ERROR", "msg": exitedMsg, "error": "signal: killed"}},
		},
		{
			name:     "an exit the hub asked for is not",
			stopping: true,
			emit: func(l hclog.Logger) {
				l.Error(exitedMsg, "error", "signal: terminated")
			},
			want: []map[string]any{{"level": "INFO", "msg": exitedMsg, "error": "signal: terminated"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf syncBuffer
			l := newPluginLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
				func() bool { return tc.stopping })
			tc.emit(l)
			got := buf.records(t)
			if len(got) != len(tc.want) {
				t.Fatalf("%d records, want %d: %v", len(got), len(tc.want), got)
			}
			for i, want := range tc.want {
				for k, v := range want {
					if gv, ok := got[i][k]; v == nil && ok || v != nil && gv != v {
						t.Errorf("record %d: %s = %v, want %v (%v)", i, k, gv, v, got[i])
					}
				}
			}
		})
	}
}

// A panic that ends the plugin is written once its stack stops coming.
func TestPluginLogBridgeFlushesAPanicWhenQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf syncBuffer
		l := newPluginLogger(slog.New(slog.NewJSONHandler(&buf, nil)), nil)
		l.Error("panic: boom")
		l.Error("goroutine 1 [running]:")
		synctest.Wait()
		if got := buf.records(t); len(got) != 0 {
			t.Fatalf("written before the stack ended: %v", got)
		}
		time.Sleep(panicQuiet)
		synctest.Wait()
		got := buf.records(t)
		if len(got) != 1 || got[0]["panic"] != "panic: boom" || got[0]["stack"] != "goroutine 1 [running]:" {
			t.Fatalf("records %v, want one panic", got)
		}
	})
}
