// Package natstest runs a NATS server with JetStream in the process (the
// real nats-server, embedded) for the nats connector's tests, the
// end-to-end tests and the hub's sandbox, and reads back what its streams
// hold.
package natstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server is an embedded nats-server with JetStream storing under a
// directory, listening on loopback.
type Server struct {
	mu   sync.Mutex
	opts server.Options
	srv  *server.Server
}

// Option adjusts the server's options (authentication, limits).
type Option func(*server.Options)

// WithToken makes clients authenticate with token.
func WithToken(token string) Option { return func(o *server.Options) { o.Authorization = token } }

// WithUser makes clients authenticate with a username and password.
func WithUser(user, pass string) Option {
	return func(o *server.Options) { o.Username, o.Password = user, pass }
}

// Start starts a server storing JetStream data under dir on a free
// loopback port.
func Start(dir string, opts ...Option) (*Server, error) {
	s := &Server{opts: server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: dir,
		NoLog: true, NoSigs: true,
		// The sandbox and tests run several servers in one process.
		ServerName: "wahub-natstest",
	}}
	for _, o := range opts {
		o(&s.opts)
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	// Restarts keep the port, as a real server's address stays the same.
	s.opts.Port = s.srv.Addr().(*net.TCPAddr).Port
	return s, nil
}

func (s *Server) start() error {
	opts := s.opts
	srv, err := server.NewServer(&opts)
	if err != nil {
		return fmt.Errorf("natstest: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return errors.New("natstest: nats-server did not become ready")
	}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	return nil
}

// URL is the address clients connect to.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.opts.Port) }

// Stop shuts the server down (its streams stay on disk).
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Restart starts a stopped server again on the same port and store.
func (s *Server) Restart() error { return s.start() }

// Close stops the server.
func (s *Server) Close() { s.Stop() }

func (s *Server) connect() (*natsgo.Conn, jetstream.JetStream, error) {
	opts := []natsgo.Option{}
	if s.opts.Authorization != "" {
		opts = append(opts, natsgo.Token(s.opts.Authorization))
	}
	if s.opts.Username != "" {
		opts = append(opts, natsgo.UserInfo(s.opts.Username, s.opts.Password))
	}
	nc, err := natsgo.Connect(s.URL(), opts...)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// AddStream creates (or updates) a stream capturing subjects, with a
// duplicate window of dedup (0: JetStream's two minutes).
func (s *Server) AddStream(ctx context.Context, name string, dedup time.Duration, subjects ...string) error {
	nc, js, err := s.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: subjects, Duplicates: dedup, Storage: jetstream.FileStorage})
	return err
}

// Message is one stored message.
type Message struct {
	Stream   string            `json:"stream"`
	Sequence uint64            `json:"sequence"`
	Subject  string            `json:"subject"`
	Headers  map[string]string `json:"headers,omitempty"`
	Data     []byte            `json:"-"`
	Time     time.Time         `json:"time"`
}

// Messages reads every message of the stream, in stream order (from
// sequence from on, at most limit of them; limit 0 means all).
func (s *Server) Messages(ctx context.Context, streamName string, from uint64, limit int) ([]Message, error) {
	nc, js, err := s.connect()
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	st, err := js.Stream(ctx, streamName)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, err
	}
	var out []Message
	for seq := max(from, info.State.FirstSeq); seq <= info.State.LastSeq; seq++ {
		if limit > 0 && len(out) == limit {
			break
		}
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		msg := Message{Stream: streamName, Sequence: m.Sequence, Subject: m.Subject, Data: m.Data, Time: m.Time, Headers: map[string]string{}}
		for k, v := range m.Header {
			if len(v) > 0 {
				msg.Headers[k] = v[0]
			}
		}
		out = append(out, msg)
	}
	return out, nil
}

// StreamState is a stream's name, subjects and counts.
type StreamState struct {
	Name     string   `json:"name"`
	Subjects []string `json:"subjects"`
	Messages uint64   `json:"messages"`
	FirstSeq uint64   `json:"first_seq"`
	LastSeq  uint64   `json:"last_seq"`
}

// Streams describes every stream.
func (s *Server) Streams(ctx context.Context) ([]StreamState, error) {
	nc, js, err := s.connect()
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	var out []StreamState
	l := js.ListStreams(ctx)
	for info := range l.Info() {
		out = append(out, StreamState{Name: info.Config.Name, Subjects: info.Config.Subjects, Messages: info.State.Msgs, FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq})
	}
	return out, l.Err()
}
