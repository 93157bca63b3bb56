package console

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

const (
	cookieName = "wahub_console"
	// A session ends after idleTimeout without a request, and after
	// maxLifetime whatever happens: a forgotten laptop does not stay
	// signed in for ever.
	idleTimeout = 12 * time.Hour
	maxLifetime = 7 * 24 * time.Hour
	maxSessions = 10_000
)

// session is one signed-in browser. Sessions live in the hub's memory: a
// restart signs everyone out, which is the safe side for a token-based
// sign-in.
type session struct {
	id, csrf string
	role     role
	created  time.Time
	mu       sync.Mutex
	seen     time.Time
}

func (s *session) expires() time.Time { return s.created.Add(maxLifetime) }

// Admin tells templates whether to offer actions.
func (s *session) Admin() bool { return s != nil && s.role == admin_ }

// CSRF is the token every form of the session carries.
func (s *session) CSRF() string { return s.csrf }

// Role names the session's role.
func (s *session) Role() string { return s.role.String() }

type sessions struct {
	mu  sync.Mutex
	m   map[string]*session
	now func() time.Time
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{m: map[string]*session{}, now: now}
}

func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (ss *sessions) create(r role) *session {
	now := ss.now()
	s := &session{id: randomToken(), csrf: randomToken(), role: r, created: now, seen: now}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.m) >= maxSessions {
		ss.sweepLocked(now)
		for len(ss.m) >= maxSessions { // still full: drop the oldest
			var oldest *session
			for _, o := range ss.m {
				if oldest == nil || o.created.Before(oldest.created) {
					oldest = o
				}
			}
			delete(ss.m, oldest.id)
		}
	}
	ss.m[s.id] = s
	return s
}

// get returns the request's live session, or nil.
func (ss *sessions) get(r *http.Request) *session {
	ck, err := r.Cookie(cookieName)
	if err != nil || ck.Value == "" {
		return nil
	}
	now := ss.now()
	ss.mu.Lock()
	s := ss.m[ck.Value]
	ss.mu.Unlock()
	if s == nil {
		return nil
	}
	s.mu.Lock()
	dead := now.Sub(s.seen) > idleTimeout || now.After(s.expires())
	if !dead {
		s.seen = now
	}
	s.mu.Unlock()
	if dead {
		ss.delete(s.id)
		return nil
	}
	return s
}

func (ss *sessions) delete(id string) {
	ss.mu.Lock()
	delete(ss.m, id)
	ss.mu.Unlock()
}

func (ss *sessions) sweepLocked(now time.Time) {
	for id, s := range ss.m {
		s.mu.Lock()
		dead := now.Sub(s.seen) > idleTimeout || now.After(s.expires())
		s.mu.Unlock()
		if dead {
			delete(ss.m, id)
		}
	}
}

// loginLimiter slows token guessing: ten wrong tokens from one address
// within a minute close sign-in for that address until the minute is over.
type loginLimiter struct {
	mu    sync.Mutex
	now   func() time.Time
	fails map[string][]time.Time
}

const (
	loginFailures = 10
	loginWindow   = time.Minute
)

func newLoginLimiter(now func() time.Time) *loginLimiter {
	return &loginLimiter{now: now, fails: map[string][]time.Time{}}
}

func (l *loginLimiter) recent(ip string) []time.Time {
	cut := l.now().Add(-loginWindow)
	fs := l.fails[ip]
	i := 0
	for i < len(fs) && fs[i].Before(cut) {
		i++
	}
	fs = fs[i:]
	if len(fs) == 0 {
		delete(l.fails, ip)
	} else {
		l.fails[ip] = fs
	}
	return fs
}

func (l *loginLimiter) allow(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recent(ip)) < loginFailures
}

func (l *loginLimiter) failed(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.fails) > 100_000 { // an address flood: forget, rather than grow
		l.fails = map[string][]time.Time{}
	}
	l.fails[ip] = append(l.recent(ip), l.now())
}
