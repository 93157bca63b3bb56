package natstest

import (
	"context"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/wahub/wahub/plugins/nats"
	"github.com/wahub/wahub/plugins/registry"
)

// Placeholder is the server `wahub check` validates a sandbox
// configuration with: the in-process server runs only while the hub
// serves, and the connector's check does not fail on a server it cannot
// reach.
const Placeholder = "nats://127.0.0.1:4222"

// SandboxStream is the stream the sandbox's server keeps for subjects
// under wahub.
const SandboxStream = "WAHUB"

// shown is how many of each stream's newest messages GET /sandbox shows.
const shown = 20

// Plugin declares the nats connector to the hub (package builtin lists
// it). Its sandbox is an in-process nats-server with JetStream, started
// when a connector with no url set first needs it, with a stream WAHUB
// capturing wahub.> and one for a subject outside it.
var Plugin = registry.Plugin{Name: nats.Name, New: nats.New, Sandbox: &registry.Sandbox{
	Fake: func() registry.Fake {
		f := &sandboxFake{}
		return registry.Fake{Snapshot: f.snapshot, Fill: f.fill, Close: f.close}
	},
	Fill: func(c registry.Config, _ string) { c.Default("url", Placeholder) },
}}

type sandboxFake struct {
	mu  sync.Mutex
	s   *Server
	dir string
	err error
}

func (f *sandboxFake) start() (*Server, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.s != nil || f.err != nil {
		return f.s, f.err
	}
	dir, err := os.MkdirTemp("", "wahub-sandbox-nats-")
	if err != nil {
		f.err = err
		return nil, err
	}
	s, err := Start(dir)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = s.AddStream(ctx, SandboxStream, 0, "wahub.>")
		cancel()
		if err != nil {
			s.Close()
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		f.err = err
		return nil, err
	}
	f.s, f.dir = s, dir
	return s, nil
}

var nonName = regexp.MustCompile(`[^A-Za-z0-9]+`)

func (f *sandboxFake) fill(c registry.Config) {
	if v, _ := c["url"].(string); v != "" {
		return
	}
	s, err := f.start()
	if err != nil {
		return // the snapshot says why
	}
	c["url"] = s.URL()
	subj, _ := c["subject"].(string)
	if pattern := streamSubject(subj); pattern != "" && !strings.HasPrefix(pattern, "wahub.") {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.AddStream(ctx, "WAHUB_"+strings.ToUpper(nonName.ReplaceAllString(subj, "_")), 0, pattern)
	}
}

// streamSubject is the subject pattern a stream needs to capture what a
// connector publishes with subject (a template's placeholders become a
// trailing >); "" when no one pattern captures it.
func streamSubject(subject string) string {
	i := strings.IndexByte(subject, '{')
	if i < 0 {
		return subject
	}
	prefix := subject[:i]
	if prefix == "" || !strings.HasSuffix(prefix, ".") {
		return ""
	}
	return prefix + ">"
}

func (f *sandboxFake) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.s != nil {
		f.s.Close()
		os.RemoveAll(f.dir)
	}
}

// sandboxMessage is one message as GET /sandbox shows it.
type sandboxMessage struct {
	Subject  string            `json:"subject"`
	Sequence uint64            `json:"sequence"`
	Headers  map[string]string `json:"headers"`
	Data     string            `json:"data"`
}

func (f *sandboxFake) snapshot() any {
	f.mu.Lock()
	s, err := f.s, f.err
	f.mu.Unlock()
	switch {
	case err != nil:
		return map[string]any{"error": err.Error()}
	case s == nil:
		return map[string]any{"running": false}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out := map[string]any{"url": s.URL()}
	streams, err := s.Streams(ctx)
	if err != nil {
		out["error"] = err.Error()
		return out
	}
	byStream := map[string]any{}
	for _, st := range streams {
		from := uint64(1)
		if st.LastSeq > shown {
			from = st.LastSeq - shown + 1
		}
		msgs, err := s.Messages(ctx, st.Name, from, shown)
		if err != nil {
			byStream[st.Name] = map[string]any{"error": err.Error()}
			continue
		}
		list := make([]sandboxMessage, len(msgs))
		for i, m := range msgs {
			list[i] = sandboxMessage{Subject: m.Subject, Sequence: m.Sequence, Headers: m.Headers, Data: string(m.Data)}
		}
		byStream[st.Name] = map[string]any{"subjects": st.Subjects, "messages": st.Messages, "newest": list}
	}
	out["streams"] = byStream
	return out
}
