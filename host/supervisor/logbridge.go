package supervisor

import (
	"context"
	"encoding/json"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// newPluginLogger bridges go-plugin's hclog output (its own messages and
// the plugin's stderr lines, which it re-emits) into the hub's slog.
// stopping, if not nil, tells when an exit is the one the hub asked for.
func newPluginLogger(l *slog.Logger, stopping func() bool) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "plugin",
		JSONFormat: true,
		Output:     &hclogBridge{log: l, stopping: stopping, quiet: panicQuiet},
		Level:      hclog.Debug,
	})
}

// exitedMsg is go-plugin's line when a plugin process ends; it logs it at
// ERROR for any non-zero status, a stop the hub asked for included.
const exitedMsg = "plugin process exited"

// panicQuiet is how long a panic's stack may pause before the record is
// written: go-plugin hands it over one line at a time.
const panicQuiet = 200 * time.Millisecond

// hclogBridge turns hclog JSON lines into slog records, keeping level and
// fields. A plugin's panic, which go-plugin re-emits one ERROR line per
// line of the stack, becomes one record.
type hclogBridge struct {
	log      *slog.Logger
	stopping func() bool
	quiet    time.Duration

	mu     sync.Mutex
	panic  []string // the panic being collected: its first line, then the stack
	module string   // the module (plugin) whose stderr carries the panic
	attrs  []any    // the panic's module, as record attributes
	timer  *time.Timer
}

func (b *hclogBridge) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, line := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			b.flushLocked()
			b.log.Info(line)
			continue
		}
		msg, _ := rec["@message"].(string)
		level := slog.LevelInfo
		switch rec["@level"] {
		case "trace", "debug":
			level = slog.LevelDebug
		case "warn":
			level = slog.LevelWarn
		case "error":
			level = slog.LevelError
		}
		keys := make([]string, 0, len(rec))
		for k := range rec {
			// go-plugin adds the plugin's own time as "timestamp"; the
			// record has its time already, and two would mislead.
			if !strings.HasPrefix(k, "@") && k != "timestamp" {
				keys = append(keys, k)
			}
		}
		module, _ := rec["@module"].(string)
		if level == slog.LevelError && len(keys) == 0 && b.collectPanicLocked(msg, module) {
			continue
		}
		// go-plugin's own lines (the stdio stream seeing EOF, the process
		// exiting) interleave with the stack a dying plugin still writes;
		// only the plugin's own next line ends its panic.
		if b.panic == nil || module == b.module {
			b.flushLocked()
		}
		sort.Strings(keys)
		attrs := make([]any, 0, 2*len(keys)+2)
		for _, k := range keys {
			attrs = append(attrs, k, rec[k])
		}
		if module != "" {
			attrs = append(attrs, "module", module)
		}
		if msg == exitedMsg && level == slog.LevelError && b.stopping != nil && b.stopping() {
			// Killed (or terminated by a service manager signalling the
			// whole group) while the hub stops it: an ordinary stop.
			level = slog.LevelInfo
		}
		b.log.Log(context.Background(), level, msg, attrs...)
	}
	return len(p), nil
}

// collectPanicLocked adds a bare ERROR line to the panic being collected,
// or starts one; it reports whether the line was taken.
func (b *hclogBridge) collectPanicLocked(msg, module string) bool {
	if b.panic != nil && module != b.module {
		return false
	}
	if b.panic == nil {
		if !strings.HasPrefix(msg, "panic: ") && !strings.HasPrefix(msg, "fatal error: ") {
			return false
		}
		b.module, b.attrs = module, nil
		if module != "" {
			b.attrs = []any{"module", module}
		}
	}
	b.panic = append(b.panic, msg)
	if b.timer == nil {
		b.timer = time.AfterFunc(b.quiet, b.flush)
	} else {
		b.timer.Reset(b.quiet)
	}
	return true
}

func (b *hclogBridge) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
}

// flushLocked writes the collected panic, if any, as one record.
func (b *hclogBridge) flushLocked() {
	if b.panic == nil {
		return
	}
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	first, stack := b.panic[0], strings.Join(b.panic[1:], "\n")
	b.panic = nil
	attrs := append([]any{"panic", first, "stack", stack}, b.attrs...)
	b.log.Log(context.Background(), slog.LevelError, "plugin panicked", attrs...)
}
