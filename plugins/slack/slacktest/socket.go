package slacktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Socket Mode: apps.connections.open (with the app-level token) answers
// the URL of the fake's WebSocket, "<api root>/socket-mode"; a client that
// connects there gets Slack's hello, then whatever SendEvent pushes, and
// its acknowledgements ({"envelope_id": …}) are recorded.

// DefaultAppToken is the app-level token apps.connections.open accepts
// unless WithAppToken says otherwise.
const DefaultAppToken = "xapp-1-A0WAHUBAPP-wahub-sandbox"

// socketPing is how often the fake pings a connected client, as Slack
// does; slack-go reconnects when it hears nothing for 30 seconds.
const socketPing = 10 * time.Second

// WithAppToken sets the app-level token apps.connections.open requires.
func WithAppToken(token string) Option { return func(s *Server) { s.appToken = token } }

// Envelope is one Socket Mode request the fake sent.
type Envelope struct {
	ID    string          `json:"envelope_id"`
	Type  string          `json:"type"`
	Retry int             `json:"retry_attempt"`
	Body  json.RawMessage `json:"payload"`
	Acked bool            `json:"acked"`
}

type socket struct {
	conn *websocket.Conn
	wmu  sync.Mutex // gorilla allows one writer at a time
	done chan struct{}
}

func (k *socket) write(v any) error {
	k.wmu.Lock()
	defer k.wmu.Unlock()
	_ = k.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return k.conn.WriteJSON(v)
}

// socketState is the part of Server about Socket Mode; guarded by s.mu.
type socketState struct {
	appToken  string
	sockets   []*socket
	envelopes []*Envelope
	// changed is closed (and replaced) whenever a client connects or
	// acknowledges, to wake the Wait functions.
	changed chan struct{}
}

func (s *Server) notifyLocked() {
	if s.changed != nil {
		close(s.changed)
	}
	s.changed = make(chan struct{})
}

// waitFor blocks until cond (called with s.mu held) is true or ctx ends.
func (s *Server) waitFor(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		ok, ch := cond(), s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitConnected waits until a Socket Mode client is connected.
func (s *Server) WaitConnected(ctx context.Context) error {
	return s.waitFor(ctx, func() bool { return len(s.sockets) > 0 })
}

// WaitAck waits until the client acknowledged envelope id.
func (s *Server) WaitAck(ctx context.Context, id string) error {
	return s.waitFor(ctx, func() bool {
		for _, e := range s.envelopes {
			if e.ID == id {
				return e.Acked
			}
		}
		return false
	})
}

// Envelopes returns the Socket Mode requests sent so far.
func (s *Server) Envelopes() []Envelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Envelope, len(s.envelopes))
	for i, e := range s.envelopes {
		out[i] = *e
	}
	return out
}

// SendEvent pushes an Events API body (EventCallback's) to the connected
// client, as an events_api envelope with retry_attempt retry, and returns
// the envelope id.
func (s *Server) SendEvent(body []byte, retry int) (string, error) {
	s.mu.Lock()
	if len(s.sockets) == 0 {
		s.mu.Unlock()
		return "", errors.New("no Socket Mode client is connected")
	}
	k := s.sockets[len(s.sockets)-1]
	e := &Envelope{ID: fmt.Sprintf("env-%04d", len(s.envelopes)+1), Type: "events_api", Retry: retry, Body: append(json.RawMessage(nil), body...)}
	s.envelopes = append(s.envelopes, e)
	s.mu.Unlock()
	frame := map[string]any{"envelope_id": e.ID, "type": e.Type, "payload": e.Body, "accepts_response_payload": false, "retry_attempt": retry, "retry_reason": ""}
	if retry > 0 {
		frame["retry_reason"] = "timeout"
	}
	return e.ID, k.write(frame)
}

// CloseSockets disconnects every Socket Mode client.
func (s *Server) CloseSockets() {
	s.mu.Lock()
	socks := s.sockets
	s.sockets = nil
	s.notifyLocked()
	s.mu.Unlock()
	for _, k := range socks {
		_ = k.conn.Close()
	}
}

// openConnection answers apps.connections.open; s.mu is held.
func (s *Server) openConnection(form url.Values, authz, wsURL string) (int, map[string]any, http.Header) {
	switch token := tokenOf(form, authz); {
	case token == "":
		return failed("not_authed")
	case token == s.token:
		return failed("not_allowed_token_type")
	case token != s.appToken:
		return failed("invalid_auth")
	}
	return http.StatusOK, map[string]any{"ok": true, "url": wsURL}, nil
}

// socketURL is where the client that called apps.connections.open with r
// connects: beside that method, on the same host, whatever the prefix.
func socketURL(r *http.Request) string {
	scheme := "ws"
	if r.TLS != nil {
		scheme = "wss"
	}
	path := r.URL.Path
	if u, err := url.ParseRequestURI(r.RequestURI); err == nil {
		path = u.Path // before any http.StripPrefix
	}
	path = strings.TrimSuffix(path, "apps.connections.open") + "socket-mode"
	return scheme + "://" + r.Host + path + "?ticket=fake&app_id=" + AppID
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

// serveSocket is the Socket Mode WebSocket.
func (s *Server) serveSocket(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade answered the error
	}
	k := &socket{conn: conn, done: make(chan struct{})}
	if err := k.write(map[string]any{
		"type": "hello", "num_connections": 1,
		"debug_info":      map[string]any{"host": "wahub-fake", "approximate_connection_time": 18060},
		"connection_info": map[string]any{"app_id": AppID},
	}); err != nil {
		conn.Close()
		return
	}
	s.mu.Lock()
	s.sockets = append(s.sockets, k)
	s.notifyLocked()
	s.mu.Unlock()

	go func() {
		t := time.NewTicker(socketPing)
		defer t.Stop()
		for {
			select {
			case <-k.done:
				return
			case <-t.C:
				k.wmu.Lock()
				err := conn.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(5*time.Second))
				k.wmu.Unlock()
				if err != nil {
					return
				}
			}
		}
	}()
	defer func() {
		close(k.done)
		conn.Close()
		s.mu.Lock()
		for i, x := range s.sockets {
			if x == k {
				s.sockets = append(s.sockets[:i], s.sockets[i+1:]...)
				break
			}
		}
		s.notifyLocked()
		s.mu.Unlock()
	}()
	for {
		var ack struct {
			EnvelopeID string `json:"envelope_id"`
		}
		if err := conn.ReadJSON(&ack); err != nil {
			return
		}
		s.mu.Lock()
		for _, e := range s.envelopes {
			if e.ID == ack.EnvelopeID {
				e.Acked = true
			}
		}
		s.notifyLocked()
		s.mu.Unlock()
	}
}
