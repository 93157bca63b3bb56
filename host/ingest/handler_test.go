package ingest

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

// memLog is a Log in memory that can be told to fail.
type memLog struct {
	mu     sync.Mutex
	events []sdk.Event
	fail   error
}

func (l *memLog) Append(ctx context.Context, evs []sdk.Event) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return 0, l.fail
	}
	for i := range evs {
		evs[i].Seq = int64(len(l.events) + 1)
		l.events = append(l.events, evs[i])
	}
	return len(evs), nil
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "whatsapp", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHandlerAnswers(t *testing.T) {
	text := readFixture(t, "text.json")
	invalidUTF8 := bytes.Replace(text, []byte(`"body": "`), []byte("\"body\": \"\xff\xfe "), 1)
	if bytes.Equal(invalidUTF8, text) {
		t.Fatal("text.json has no text body to spoil")
	}
	secret := []byte("s3cret")
	tests := []struct {
		name     string
		method   string
		query    string
		body     []byte
		sig      string
		maxBody  int64
		storeErr error
		want     int
		stored   int
	}{
		{name: "valid POST", method: "POST", body: text, sig: Sign(secret, text), want: 200, stored: 1},
		{name: "signed by the previous secret", method: "POST", body: text, sig: Sign([]byte("old"), text), want: 200, stored: 1},
		{name: "missing signature", method: "POST", body: text, want: 401},
		{name: "wrong secret", method: "POST", body: text, sig: Sign([]byte("other"), text), want: 401},
		{name: "no sha256= prefix", method: "POST", body: text, sig: strings.TrimPrefix(Sign(secret, text), "sha256="), want: 401},
		{name: "not hex", method: "POST", body: text, sig: "sha256=" + strings.Repeat("g", 64), want: 401},
		{name: "short digest", method: "POST", body: text, sig: "sha256=abcd", want: 401},
		{name: "uppercase hex is still the same digest", method: "POST", body: text, sig: "sha256=" + strings.ToUpper(strings.TrimPrefix(Sign(secret, text), "sha256=")), want: 200, stored: 1},
		{name: "body changed after signing", method: "POST", body: append(bytes.Clone(text), ' '), sig: Sign(secret, text), want: 401},
		{name: "bad JSON", method: "POST", body: []byte("{nope"), sig: Sign(secret, []byte("{nope")), want: 400},
		{name: "wrong object", method: "POST", body: []byte(`{"object":"page","entry":[]}`), sig: Sign(secret, []byte(`{"object":"page","entry":[]}`)), want: 400},
		{name: "too large", method: "POST", body: text, sig: Sign(secret, text), maxBody: int64(len(text) - 1), want: 413},
		{name: "invalid UTF-8 in a signed body", method: "POST", body: invalidUTF8, sig: Sign(secret, invalidUTF8), want: 400},
		{name: "store down", method: "POST", body: text, sig: Sign(secret, text), storeErr: errors.New("disk I/O error"), want: 503},
		{name: "verification", method: "GET", query: "hub.mode=subscribe&hub.verify_token=vt&hub.challenge=abc%26%3C", want: 200},
		{name: "verification wrong token", method: "GET", query: "hub.mode=subscribe&hub.verify_token=VT&hub.challenge=abc", want: 403},
		{name: "verification wrong mode", method: "GET", query: "hub.mode=unsubscribe&hub.verify_token=vt&hub.challenge=abc", want: 403},
		{name: "other method", method: "PUT", want: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := &memLog{fail: tt.storeErr}
			h := &Handler{Secrets: [][]byte{secret, []byte("old")}, VerifyToken: "vt", MaxBody: tt.maxBody, Log: log}
			req := httptest.NewRequest(tt.method, "/webhooks/whatsapp?"+tt.query, bytes.NewReader(tt.body))
			if tt.sig != "" {
				req.Header.Set(SignatureHeader, tt.sig)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
			if len(log.events) != tt.stored {
				t.Errorf("stored %d events, want %d", len(log.events), tt.stored)
			}
			if tt.method == "GET" && tt.want == 200 {
				if rec.Body.String() != "abc&<" || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
					t.Errorf("challenge answered %q as %s, want it verbatim as text/plain", rec.Body, rec.Header().Get("Content-Type"))
				}
			}
		})
	}
}

func TestHandlerWithRealStore(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "wahub.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	secret := []byte("s3cret")
	reg := prometheus.NewRegistry()
	h := &Handler{Secrets: [][]byte{secret}, Log: st, Metrics: NewMetrics(reg),
		Now: func() time.Time { return time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC) }}
	body := readFixture(t, "batch_mixed.json")

	// The same body from 20 goroutines at once, as Meta's retries can
	// arrive: each item is stored once.
	var wg sync.WaitGroup
	codes := make([]int, 20)
	for i := range codes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req := httptest.NewRequest("POST", "/webhooks/whatsapp", bytes.NewReader(body))
			req.Header.Set(SignatureHeader, Sign(secret, body))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			codes[i] = rec.Code
		}(i)
	}
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Fatalf("request %d: %d", i, c)
		}
	}
	want, err := Parse(body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.Events(context.Background(), store.EventFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("stored %d events from 20 identical POSTs, want %d", len(got), len(want))
	}
	if dups := testutil.ToFloat64(h.Metrics.dups); dups != float64(19*len(want)) {
		t.Errorf("duplicate counter %v, want %d", dups, 19*len(want))
	}

	// sent, delivered and read of one wamid are three events.
	for _, name := range []string{"status_sent.json", "status_delivered.json", "status_read.json"} {
		b := readFixture(t, name)
		req := httptest.NewRequest("POST", "/webhooks/whatsapp", bytes.NewReader(b))
		req.Header.Set(SignatureHeader, Sign(secret, b))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("%s: %d", name, rec.Code)
		}
	}
	sts, err := st.Events(context.Background(), store.EventFilter{Type: "status.*", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	// batch_mixed carries a delivered status for the same wamid, so the
	// delivered fixture adds nothing: sent, delivered, read.
	if len(sts) != 3 {
		t.Fatalf("%d status events for one wamid, want 3 (sent, delivered, read)", len(sts))
	}
}
